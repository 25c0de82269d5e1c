//! Damaged files, never a panic or a hang: valid meshes (STL binary and
//! ASCII, OBJ, GLB) and a valid PNG, mutated by proptest (bytes flipped,
//! ranges cut out or repeated, the file cut short, counts and lengths set
//! to extremes), read by the loaders `cadloop bench`, `render` and
//! `caption` use. Each read must end within seconds with a mesh whose
//! triangles all name vertices it has, or an error that names the file;
//! `cadloop caption` itself, given damaged images, captions them or
//! refuses them by name.
//! Cases that once failed shrink and stay in
//! tests/mutations.proptest-regressions.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use cadloop::executor::MeshLoader;
use cadloop::mesh::Mesh;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// The longest one read may take.
const READ_LIMIT: Duration = Duration::from_secs(20);

/// A cube with a hole-free surface: 8 vertices, 12 triangles.
fn cube() -> Mesh {
    Mesh::cuboid([0.0, 0.0, 0.0], [10.0, 20.0, 5.0])
}

fn ascii_stl(mesh: &Mesh) -> Vec<u8> {
    let mut out = String::from("solid cube\n");
    for t in &mesh.triangles {
        out.push_str("facet normal 0 0 0\nouter loop\n");
        for &i in t {
            let v = mesh.vertices[i as usize];
            out.push_str(&format!("vertex {} {} {}\n", v[0], v[1], v[2]));
        }
        out.push_str("endloop\nendfacet\n");
    }
    out.push_str("endsolid cube\n");
    out.into_bytes()
}

fn obj(mesh: &Mesh) -> Vec<u8> {
    let mut out = String::from("# cube\no cube\n");
    for v in &mesh.vertices {
        out.push_str(&format!("v {} {} {}\n", v[0], v[1], v[2]));
    }
    for t in &mesh.triangles {
        out.push_str(&format!("f {} {} {}\n", t[0] + 1, t[1] + 1, t[2] + 1));
    }
    out.into_bytes()
}

/// The valid files, by extension.
fn originals() -> Vec<(&'static str, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let mesh = cube();
    mesh.write_stl(&dir.path().join("cube.stl")).unwrap();
    cadloop::glb::write(&mesh, &dir.path().join("cube.glb")).unwrap();
    let mut png = Vec::new();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 128]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    vec![
        ("stl", std::fs::read(dir.path().join("cube.stl")).unwrap()),
        ("stl", ascii_stl(&mesh)),
        ("obj", obj(&mesh)),
        ("glb", std::fs::read(dir.path().join("cube.glb")).unwrap()),
        ("png", png),
    ]
}

/// One change to a file's bytes; positions are taken modulo its length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Cut(usize, usize),
    Repeat(usize, usize),
    Truncate(usize),
    /// A 32-bit little-endian field set to an extreme (counts, lengths).
    Extreme(usize, u32),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, x)| Mutation::Flip(at, x)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Mutation::Cut(at, n)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Mutation::Repeat(at, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop_oneof![
                Just(0u32),
                Just(1),
                Just(u32::MAX),
                Just(0x7fff_ffff),
                Just(1 << 20)
            ]
        )
            .prop_map(|(at, x)| Mutation::Extreme(at, x)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let at = |i: usize, bytes: &Vec<u8>| i % bytes.len();
    match mutation {
        Mutation::Flip(i, x) => {
            let i = at(*i, bytes);
            bytes[i] ^= x;
        }
        Mutation::Cut(i, n) => {
            let i = at(*i, bytes);
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Repeat(i, n) => {
            let i = at(*i, bytes);
            let end = (i + n).min(bytes.len());
            let piece = bytes[i..end].to_vec();
            bytes.splice(i..i, piece);
        }
        Mutation::Truncate(i) => {
            let i = at(*i, bytes);
            bytes.truncate(i);
        }
        Mutation::Extreme(i, x) => {
            // Aligned to 4 bytes, where binary formats keep their fields.
            let i = at(*i, bytes) / 4 * 4;
            if i + 4 <= bytes.len() {
                bytes[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
        }
        Mutation::Insert(i, piece) => {
            let i = at(*i, bytes);
            bytes.splice(i..i, piece.iter().copied());
        }
    }
}

/// Reads `path` on its own thread, as its extension says; `Err` when it
/// panics or takes longer than [`READ_LIMIT`].
fn read_guarded(path: &Path) -> Result<Result<String, String>, String> {
    let (send, receive) = mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let read = std::panic::catch_unwind(|| read(&owned));
        let _ = send.send(read);
    });
    match receive.recv_timeout(READ_LIMIT) {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(_)) => Err("the reader panicked".into()),
        Err(_) => Err(format!("the reader took longer than {READ_LIMIT:?}")),
    }
}

/// `Ok(what was read)` or `Err(the error's message)`.
fn read(path: &Path) -> Result<String, String> {
    if path.extension().is_some_and(|e| e == "png") {
        return cadloop::caption::load_image(path)
            .map(|image| format!("{}×{} image", image.width(), image.height()))
            .map_err(|e| cadloop::error_chain(&e));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // STL, OBJ and GLB are read without FreeCAD: no pool is started.
    let loader = MeshLoader::new(common::settings(1));
    let mesh = runtime
        .block_on(loader.load(path))
        .map_err(|e| cadloop::error_chain(&e))?;
    let vertices = mesh.vertices.len() as u32;
    if let Some(t) = mesh
        .triangles
        .iter()
        .find(|t| t.iter().any(|&i| i >= vertices))
    {
        return Err(format!(
            "BAD MESH: triangle {t:?} names a vertex beyond the {vertices} read"
        ));
    }
    Ok(format!("{} triangles", mesh.triangles.len()))
}

#[test]
fn the_valid_files_read() {
    let dir = tempfile::tempdir().unwrap();
    for (n, (extension, bytes)) in originals().into_iter().enumerate() {
        let path = dir.path().join(format!("valid-{n}.{extension}"));
        std::fs::write(&path, &bytes).unwrap();
        let read = read_guarded(&path).unwrap();
        assert!(read.is_ok(), "{}: {read:?}", path.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn damaged_meshes_and_images_are_read_or_refused_by_name(
        which in 0usize..5,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (extension, mut bytes) = originals().swap_remove(which);
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("damaged.{extension}"));
        std::fs::write(&path, &bytes).unwrap();
        match read_guarded(&path) {
            Err(failure) => prop_assert!(false, "{failure}"),
            Ok(Ok(read)) => prop_assert!(!read.is_empty()),
            Ok(Err(message)) => {
                prop_assert!(!message.starts_with("BAD MESH"), "{message}");
                prop_assert!(message.contains("damaged"), "the error names the file: {message}");
            }
        }
    }
}

#[test]
fn the_caption_command_captions_or_refuses_damaged_images_by_name() {
    let captioner = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-blip");
    let png = originals().swap_remove(4).1;
    let dir = tempfile::tempdir().unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(mutation(), 1..4);
    let (mut captioned, mut refused) = (0, 0);
    // Case 0 is the image undamaged: it must be captioned.
    for n in 0..17 {
        let mutations = if n == 0 {
            Vec::new()
        } else {
            strategy.new_tree(&mut runner).unwrap().current()
        };
        let mut bytes = png.clone();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        let name = format!("damaged-{n}.png");
        std::fs::write(dir.path().join(&name), &bytes).unwrap();
        let out = common::cadloop(
            dir.path(),
            &[
                "caption",
                &name,
                "--captioner",
                captioner.to_str().unwrap(),
                "--beams",
                "1",
            ],
        );
        let said = common::text(&out.stderr);
        assert!(!said.contains("panicked"), "{mutations:?}: {said}");
        match out.status.code() {
            Some(0) => {
                captioned += 1;
                assert!(
                    !common::text(&out.stdout).trim().is_empty(),
                    "{mutations:?}"
                );
            }
            Some(2) => {
                refused += 1;
                assert!(said.contains(&name), "the file is named: {said}");
                assert!(out.stdout.is_empty(), "{mutations:?}");
            }
            other => panic!("exit {other:?} for {mutations:?}: {said}"),
        }
    }
    println!("{captioned} captioned, {refused} refused");
    assert!(
        captioned >= 1 && refused >= 3,
        "{refused} refused, {captioned} captioned"
    );
}
