/*
 * Makes a process see an older x86 CPU, so that ONNX Runtime (and cadloop's
 * own detection) pick the kernels they would pick there: the real kernels,
 * run natively, only chosen as on that CPU.
 *
 *     cc -O2 -shared -fPIC -o cpu_as.so captioner/cpu_as.c
 *     CADLOOP_CPU_AS=avx2 LD_PRELOAD=$PWD/cpu_as.so cadloop caption ...
 *
 * Profiles (each hides what that CPU class lacks; this machine must have it):
 *     avx2          AVX2 only: no AVX-512, no VNNI, no AMX (AMD Zen 2/3, Intel Haswell to Comet Lake)
 *     avx512        AVX-512 without VNNI or AMX (Intel Skylake-SP)
 *     avx-vnni      AVX2 with AVX-VNNI, no AVX-512, no AMX (Intel Alder Lake and later clients)
 *     avx512-vnni   AVX-512 with VNNI, no AMX (Intel Ice Lake, Cascade Lake; AMD Zen 4/5)
 *     native        nothing hidden
 *
 * How: Linux's CPUID faulting (arch_prctl ARCH_SET_CPUID) makes every cpuid
 * instruction of the process raise SIGSEGV; the handler runs the real cpuid
 * with faulting switched off for a moment, clears the hidden feature bits
 * and steps over the instruction. The setting is inherited by threads and
 * forks and reset by execve, where LD_PRELOAD sets it up again. Where the
 * CPU or kernel cannot fault on cpuid, the process stops at once with exit
 * status 86 and a message, rather than run unmasked.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

/* Leaf 7 sub-leaf 0: EBX, ECX, EDX; leaf 7 sub-leaf 1: EAX, EDX. */
static uint32_t hide_7_ebx, hide_7_ecx, hide_7_edx, hide_71_eax, hide_71_edx;

#define BIT(n) (1u << (n))
/* AVX-512 F, DQ, IFMA, CD, BW, VL (EBX); VBMI, VBMI2, BITALG, VPOPCNTDQ (ECX);
 * VP2INTERSECT, FP16 (EDX); BF16 (7.1 EAX). */
#define AVX512_EBX (BIT(16) | BIT(17) | BIT(21) | BIT(28) | BIT(30) | BIT(31))
#define AVX512_ECX (BIT(1) | BIT(6) | BIT(12) | BIT(14))
#define AVX512_EDX (BIT(8) | BIT(23))
#define AVX512_71_EAX BIT(5)
/* AVX512-VNNI (ECX); AVX-VNNI (7.1 EAX); AVX-VNNI-INT8 (7.1 EDX). */
#define AVX512_VNNI_ECX BIT(11)
#define AVX_VNNI_71_EAX BIT(4)
#define AVX_VNNI_INT8_71_EDX BIT(4)
/* AMX BF16, TILE, INT8 (EDX); AMX FP16 (7.1 EAX). */
#define AMX_EDX (BIT(22) | BIT(24) | BIT(25))
#define AMX_71_EAX BIT(21)

static long set_cpuid_enabled(int enabled) {
    return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled);
}

static void on_fault(int signal_number, siginfo_t *info, void *context) {
    (void)info;
    ucontext_t *uc = context;
    greg_t *regs = uc->uc_mcontext.gregs;
    const uint8_t *ip = (const uint8_t *)regs[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) {
        /* A real fault: let it happen again without this handler. */
        signal(signal_number, SIG_DFL);
        return;
    }
    uint32_t leaf = (uint32_t)regs[REG_RAX], sub = (uint32_t)regs[REG_RCX];
    uint32_t a = 0, b = 0, c = 0, d = 0;
    set_cpuid_enabled(1);
    __cpuid_count(leaf, sub, a, b, c, d);
    set_cpuid_enabled(0);
    if (leaf == 7 && sub == 0) {
        b &= ~hide_7_ebx;
        c &= ~hide_7_ecx;
        d &= ~hide_7_edx;
    } else if (leaf == 7 && sub == 1) {
        a &= ~hide_71_eax;
        d &= ~hide_71_edx;
    }
    regs[REG_RAX] = a;
    regs[REG_RBX] = b;
    regs[REG_RCX] = c;
    regs[REG_RDX] = d;
    regs[REG_RIP] += 2;
}

static void stop(const char *message) {
    fprintf(stderr, "cpu_as: %s\n", message);
    _exit(86);
}

__attribute__((constructor)) static void start(void) {
    const char *profile = getenv("CADLOOP_CPU_AS");
    if (profile == NULL || strcmp(profile, "native") == 0) {
        return;
    }
    int avx512 = 0, vnni = 0, avx_vnni = 0;
    if (strcmp(profile, "avx2") == 0) {
    } else if (strcmp(profile, "avx512") == 0) {
        avx512 = 1;
    } else if (strcmp(profile, "avx-vnni") == 0) {
        avx_vnni = 1;
    } else if (strcmp(profile, "avx512-vnni") == 0) {
        avx512 = vnni = 1;
    } else {
        stop("CADLOOP_CPU_AS must be avx2, avx512, avx-vnni, avx512-vnni or native");
    }
    hide_7_edx = AMX_EDX;
    hide_71_eax = AMX_71_EAX | AVX_VNNI_71_EAX | AVX512_71_EAX;
    hide_71_edx = AVX_VNNI_INT8_71_EDX;
    if (!avx512) {
        hide_7_ebx |= AVX512_EBX;
        hide_7_ecx |= AVX512_ECX;
        hide_7_edx |= AVX512_EDX;
    }
    if (avx512) {
        hide_71_eax &= ~AVX512_71_EAX;
    }
    if (!vnni) {
        hide_7_ecx |= AVX512_VNNI_ECX;
    }
    if (avx_vnni) {
        hide_71_eax &= ~AVX_VNNI_71_EAX;
    }

    /* The profile must be a subset of this CPU, or it would promise what is not there. */
    uint32_t a, b, c, d, a1, b1, c1, d1;
    __cpuid_count(7, 0, a, b, c, d);
    __cpuid_count(7, 1, a1, b1, c1, d1);
    if (!(b & BIT(5))) {
        stop("this CPU has no AVX2");
    }
    if (avx512 && (b & AVX512_EBX) != AVX512_EBX) {
        stop("this CPU has no AVX-512 (F, DQ, CD, BW, VL)");
    }
    if (vnni && !(c & AVX512_VNNI_ECX)) {
        stop("this CPU has no AVX-512 VNNI");
    }
    if (avx_vnni && !(a1 & AVX_VNNI_71_EAX)) {
        stop("this CPU has no AVX-VNNI");
    }

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSEGV, &action, NULL) != 0) {
        stop("cannot install the SIGSEGV handler");
    }
    if (set_cpuid_enabled(0) != 0) {
        stop("this CPU or kernel cannot fault on cpuid (arch_prctl ARCH_SET_CPUID), so features cannot be hidden");
    }
}
