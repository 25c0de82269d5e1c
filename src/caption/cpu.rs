//! Which integer kernels ONNX Runtime picks on this CPU for the int8
//! captioner's products, and whether they are exact for its weights.
//!
//! ONNX Runtime multiplies uint8 activations by int8 weights. Where the CPU
//! has VNNI (AVX-512 or AVX), AMX, or is Arm64 or older x86 (SSE), the
//! products are summed in 32 bits: exact. On AVX2 and on AVX-512 without
//! VNNI its kernels use `vpmaddubsw`, which adds each *pair* of products in
//! 16 bits and saturates when both weights of a pair are large
//! (255 × 127 × 2 > 32767). `captioner/export.py` keeps weights within ±64
//! for that reason (255 × 64 × 2 fits); a folder quantised with the full
//! range needs ONNX Runtime's exact u8×u8 kernels there (slower).
//!
//! The choice below follows ONNX Runtime's own (its MLAS `platform.cpp`),
//! read from the same cpuid bits, so a test that hides features from the
//! process (`captioner/cpu_as.c`) sees the path ONNX Runtime takes.

use std::fmt;

/// The kernels ONNX Runtime uses for u8 × s8 matrix products here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegerPath {
    /// AMX tiles (`tdpbusd`): 32-bit sums.
    Amx,
    /// AVX-512 VNNI (`vpdpbusd`): 32-bit sums.
    Avx512Vnni,
    /// AVX-VNNI on 256-bit registers: 32-bit sums.
    AvxVnni,
    /// AVX-512 without VNNI (`vpmaddubsw`): pairs summed in 16 bits.
    Avx512,
    /// AVX2 (`vpmaddubsw`): pairs summed in 16 bits.
    Avx2,
    /// x86 without AVX2: operands widened to 16 bits, 32-bit sums (slow).
    Sse,
    /// Arm64: widening products summed in 32 bits (dot-product instructions where present).
    Arm64 { dot_product: bool },
    /// Another architecture: ONNX Runtime's portable kernels, 32-bit sums.
    Portable,
}

impl IntegerPath {
    /// The path ONNX Runtime takes on the CPU this process runs on.
    pub fn detect() -> IntegerPath {
        feature_bits().path()
    }

    /// Whether pairs of u8 × s8 products are summed in 16 bits, so that
    /// full-range int8 weights can saturate.
    pub fn saturates_full_range(self) -> bool {
        matches!(self, IntegerPath::Avx512 | IntegerPath::Avx2)
    }

    /// A short name, as `cadloop doctor` prints it.
    pub fn name(self) -> &'static str {
        match self {
            IntegerPath::Amx => "AMX",
            IntegerPath::Avx512Vnni => "AVX-512 VNNI",
            IntegerPath::AvxVnni => "AVX-VNNI",
            IntegerPath::Avx512 => "AVX-512 without VNNI",
            IntegerPath::Avx2 => "AVX2",
            IntegerPath::Sse => "SSE",
            IntegerPath::Arm64 { dot_product: true } => "Arm64 dot product",
            IntegerPath::Arm64 { dot_product: false } => "Arm64 NEON",
            IntegerPath::Portable => "portable",
        }
    }

    /// What int8 captioning gives on this path, in a sentence.
    pub fn advice(self) -> &'static str {
        match self {
            IntegerPath::Amx
            | IntegerPath::Avx512Vnni
            | IntegerPath::AvxVnni
            | IntegerPath::Arm64 { .. } => "products summed in 32 bits, exact; int8 advised",
            IntegerPath::Avx512 | IntegerPath::Avx2 => {
                "pairs of products summed in 16 bits: exact for export.py's int8 (weights within ±64), \
                 int8 advised; a folder quantised with full-range weights runs on slower exact \
                 u8×u8 kernels (export it again)"
            }
            IntegerPath::Sse | IntegerPath::Portable => {
                "no fast integer kernels on this CPU: int8 is exact but gains little; fp32 advised"
            }
        }
    }
}

impl fmt::Display for IntegerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The CPU features that decide the path, by name, for `cadloop doctor`.
pub fn features() -> Vec<&'static str> {
    feature_bits().names()
}

/// The feature bits ONNX Runtime reads, after the operating system's consent
/// (XCR0) to the registers they need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Features {
    avx2: bool,
    avx_vnni: bool,
    avx512: bool,
    avx512_vnni: bool,
    amx_int8: bool,
    arm64: bool,
    arm_dot_product: bool,
}

impl Features {
    fn names(self) -> Vec<&'static str> {
        [
            (self.avx2, "AVX2"),
            (self.avx_vnni, "AVX-VNNI"),
            (self.avx512, "AVX-512"),
            (self.avx512_vnni, "AVX-512 VNNI"),
            (self.amx_int8, "AMX-INT8"),
            (self.arm64, "Arm64"),
            (self.arm_dot_product, "dot product"),
        ]
        .into_iter()
        .filter_map(|(has, name)| has.then_some(name))
        .collect()
    }

    /// ONNX Runtime's order: later checks override earlier ones.
    fn path(self) -> IntegerPath {
        if self.arm64 {
            return IntegerPath::Arm64 {
                dot_product: self.arm_dot_product,
            };
        }
        if !self.avx2 {
            return if cfg!(target_arch = "x86_64") {
                IntegerPath::Sse
            } else {
                IntegerPath::Portable
            };
        }
        let mut path = IntegerPath::Avx2;
        if self.avx_vnni {
            path = IntegerPath::AvxVnni;
        }
        if self.avx512 {
            path = if self.avx512_vnni {
                IntegerPath::Avx512Vnni
            } else {
                IntegerPath::Avx512
            };
        }
        if self.amx_int8 {
            path = IntegerPath::Amx;
        }
        path
    }
}

#[cfg(target_arch = "x86_64")]
fn feature_bits() -> Features {
    use std::arch::x86_64::{__cpuid, __cpuid_count};

    #[target_feature(enable = "xsave")]
    unsafe fn xcr0() -> u64 {
        std::arch::x86_64::_xgetbv(0)
    }

    #[allow(unused_unsafe)]
    let (max_leaf, leaf1) = unsafe { (__cpuid(0).eax, __cpuid(1)) };
    let osxsave_avx = 1 << 27 | 1 << 28;
    if leaf1.ecx & osxsave_avx != osxsave_avx {
        return Features::default();
    }
    // SAFETY: the OSXSAVE bit says that xgetbv exists and the OS enabled XSAVE.
    let xcr0 = unsafe { xcr0() };
    if xcr0 & 0x6 != 0x6 || max_leaf < 7 {
        return Features::default();
    }
    #[allow(unused_unsafe)]
    let leaf7 = unsafe { __cpuid_count(7, 0) };
    #[allow(unused_unsafe)]
    let leaf7_1 = if leaf7.eax >= 1 {
        unsafe { __cpuid_count(7, 1) }.eax
    } else {
        0
    };
    let fma = leaf1.ecx & 1 << 12 != 0;
    let avx2 = fma && leaf7.ebx & 1 << 5 != 0;
    // AVX-512 F with BW, DQ and VL, and the OS saving opmask and ZMM state.
    let avx512_core = 1 << 16 | 1 << 17 | 1 << 30 | 1 << 31;
    let avx512 = avx2 && leaf7.ebx & avx512_core == avx512_core && xcr0 & 0xE0 == 0xE0;
    // AMX-TILE and AMX-INT8, and the OS saving tile state.
    let amx = 1 << 24 | 1 << 25;
    let tile_state = 1 << 17 | 1 << 18;
    Features {
        avx2,
        avx_vnni: avx2 && leaf7_1 & 1 << 4 != 0,
        avx512,
        avx512_vnni: avx512 && leaf7.ecx & 1 << 11 != 0,
        amx_int8: avx2 && leaf7.edx & amx == amx && xcr0 & tile_state == tile_state,
        ..Features::default()
    }
}

#[cfg(target_arch = "aarch64")]
fn feature_bits() -> Features {
    Features {
        arm64: true,
        arm_dot_product: std::arch::is_aarch64_feature_detected!("dotprod"),
        ..Features::default()
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn feature_bits() -> Features {
    Features::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x86(avx2: bool, avx_vnni: bool, avx512: bool, avx512_vnni: bool, amx: bool) -> IntegerPath {
        Features {
            avx2,
            avx_vnni,
            avx512,
            avx512_vnni,
            amx_int8: amx,
            ..Features::default()
        }
        .path()
    }

    #[test]
    fn the_path_follows_onnx_runtimes_order() {
        assert_eq!(x86(true, false, false, false, false), IntegerPath::Avx2);
        assert_eq!(x86(true, true, false, false, false), IntegerPath::AvxVnni);
        // AVX-512 without VNNI overrides AVX-VNNI, as ONNX Runtime does.
        assert_eq!(x86(true, true, true, false, false), IntegerPath::Avx512);
        assert_eq!(x86(true, false, true, true, false), IntegerPath::Avx512Vnni);
        assert_eq!(x86(true, true, true, true, true), IntegerPath::Amx);
        assert_eq!(
            Features {
                arm64: true,
                arm_dot_product: true,
                ..Features::default()
            }
            .path(),
            IntegerPath::Arm64 { dot_product: true }
        );
    }

    #[test]
    fn only_16_bit_pair_sums_saturate() {
        let saturating: Vec<IntegerPath> = [
            IntegerPath::Amx,
            IntegerPath::Avx512Vnni,
            IntegerPath::AvxVnni,
            IntegerPath::Avx512,
            IntegerPath::Avx2,
            IntegerPath::Sse,
            IntegerPath::Arm64 { dot_product: true },
            IntegerPath::Portable,
        ]
        .into_iter()
        .filter(|p| p.saturates_full_range())
        .collect();
        assert_eq!(saturating, [IntegerPath::Avx512, IntegerPath::Avx2]);
    }
}
