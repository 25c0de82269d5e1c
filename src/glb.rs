//! `model.glb`: the solid's mesh as binary glTF 2.0, for web viewers, game
//! engines, Blender and AR, and reading such files back for `cadloop render`.
//!
//! Written from the same mesh as model.stl: one triangle list with a flat
//! normal per facet (three vertices per triangle, as in the STL), positions
//! in the part's millimetres; a result of named parts has a node, a mesh
//! and a coloured material for each instead. glTF counts metres with Y up, so the one node
//! scales by 0.001 and turns the part's Z-up onto Y-up; `asset.extras`
//! holds the part's extents in millimetres. The container (chunks, padding)
//! is the `gltf` crate's.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::mesh::Mesh;

/// glTF's component type for f32.
const FLOAT: u32 = 5126;
/// glTF's buffer-view target for vertex attributes.
const ARRAY_BUFFER: u32 = 34962;
/// Millimetres to metres.
const MM_TO_M: f64 = 0.001;
/// A quarter turn about X, Z-up onto Y-up: (x, y, z) → (x, z, −y).
const Z_UP_TO_Y_UP: [f64; 4] = [
    -std::f64::consts::FRAC_1_SQRT_2,
    0.0,
    0.0,
    std::f64::consts::FRAC_1_SQRT_2,
];

/// A GLB file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum GlbError {
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a usable binary glTF file", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: gltf::Error,
    },
    #[error("{}: {problem}", path.display())]
    Content { path: PathBuf, problem: String },
    #[error("the mesh has no triangles; a glTF file needs at least one")]
    Empty,
}

/// The GLB bytes of `mesh` (`generator`: who wrote it): one node named
/// `part`, or for a mesh of named parts a node `cadloop` holding a node for
/// each part, with its name, its own mesh and its colour.
pub fn to_bytes(mesh: &Mesh, generator: &str) -> Result<Vec<u8>, GlbError> {
    let pieces: Vec<(&str, Option<[u8; 3]>, &Mesh)> = if mesh.parts.is_empty() {
        vec![("part", None, mesh)]
    } else {
        mesh.parts
            .iter()
            .map(|p| (p.name.as_str(), Some(p.color), &p.mesh))
            .collect()
    };
    let mut bin = Vec::new();
    let (mut views, mut accessors, mut meshes, mut materials) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut min = [f32::INFINITY; 3];
    let mut max = [f32::NEG_INFINITY; 3];
    for (index, (name, color, piece)) in pieces.iter().enumerate() {
        let corners = piece.triangles.len() * 3;
        let mut positions = Vec::with_capacity(corners * 12);
        let mut normals = Vec::with_capacity(corners * 12);
        let (lo, hi) = piece.bounds().ok_or(GlbError::Empty)?;
        for triangle in &piece.triangles {
            let [a, b, c] = triangle.map(|i| piece.vertices[i as usize]);
            let normal = unit_normal(a, b, c);
            for point in [a, b, c] {
                for axis in 0..3 {
                    positions.extend_from_slice(&point[axis].to_le_bytes());
                    normals.extend_from_slice(&normal[axis].to_le_bytes());
                }
            }
        }
        for axis in 0..3 {
            min[axis] = min[axis].min(lo[axis]);
            max[axis] = max[axis].max(hi[axis]);
        }
        for (data, bounds) in [(positions, Some((lo, hi))), (normals, None)] {
            views.push(
                json!({"buffer": 0, "byteOffset": bin.len(), "byteLength": data.len(),
                              "target": ARRAY_BUFFER}),
            );
            let mut accessor = json!({"bufferView": views.len() - 1, "componentType": FLOAT,
                                      "count": corners, "type": "VEC3"});
            if let Some((lo, hi)) = bounds {
                accessor["min"] = json!(lo);
                accessor["max"] = json!(hi);
            }
            accessors.push(accessor);
            bin.extend_from_slice(&data);
        }
        meshes.push(json!({
            "name": name,
            "primitives": [{"attributes": {"POSITION": 2 * index, "NORMAL": 2 * index + 1},
                            "material": index, "mode": 4}]
        }));
        let base = color.map_or([0.78, 0.80, 0.84], |rgb| rgb.map(srgb_to_linear));
        materials.push(json!({
            "name": name,
            "pbrMetallicRoughness": {
                "baseColorFactor": [base[0], base[1], base[2], 1.0],
                "metallicFactor": 0.2,
                "roughnessFactor": 0.55
            }
        }));
    }
    let nodes = if mesh.parts.is_empty() {
        vec![json!({
            "name": "part",
            "mesh": 0,
            "rotation": Z_UP_TO_Y_UP,
            "scale": [MM_TO_M, MM_TO_M, MM_TO_M],
        })]
    } else {
        let mut nodes = vec![json!({
            "name": "cadloop",
            "children": (1..=pieces.len()).collect::<Vec<_>>(),
            "rotation": Z_UP_TO_Y_UP,
            "scale": [MM_TO_M, MM_TO_M, MM_TO_M],
        })];
        nodes.extend(
            pieces
                .iter()
                .enumerate()
                .map(|(i, (name, _, _))| json!({"name": name, "mesh": i})),
        );
        nodes
    };
    let extent: Vec<f64> = (0..3)
        .map(|i| f64::from(max[i]) - f64::from(min[i]))
        .collect();
    let document = json!({
        "asset": {
            "version": "2.0",
            "generator": generator,
            "extras": {
                "units": "mm",
                "size_mm": extent,
                "min_mm": min,
                "max_mm": max,
            }
        },
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": nodes,
        "meshes": meshes,
        "materials": materials,
        "buffers": [{"byteLength": bin.len()}],
        "bufferViews": views,
        "accessors": accessors,
    });
    let json = serde_json::to_vec(&document).expect("a JSON value serialises");
    let glb = gltf::binary::Glb {
        header: gltf::binary::Header {
            magic: *b"glTF",
            version: 2,
            length: 0,
        },
        json: Cow::Owned(json),
        bin: Some(Cow::Owned(bin)),
    };
    Ok(glb.to_vec().expect("writing into memory cannot fail"))
}

/// An sRGB byte as glTF's linear colour factor.
fn srgb_to_linear(value: u8) -> f64 {
    let c = f64::from(value) / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// Writes `mesh` to `path` as GLB.
pub fn write(mesh: &Mesh, path: &Path) -> Result<(), GlbError> {
    let bytes = to_bytes(mesh, concat!("cadloop ", env!("CARGO_PKG_VERSION")))?;
    crate::files::write_atomically(path, &bytes).map_err(|source| GlbError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The STL's facet normal; +Z for a degenerate facet, which glTF still
/// needs a unit normal for.
fn unit_normal(a: [f32; 3], b: [f32; 3], c: [f32; 3]) -> [f32; 3] {
    match crate::mesh::facet_normal(a, b, c) {
        [0.0, 0.0, 0.0] => [0.0, 0.0, 1.0],
        n => n,
    }
}

/// A 4 × 4 column-major matrix, as glTF writes them.
type Matrix = [[f64; 4]; 4];

fn multiply(a: &Matrix, b: &Matrix) -> Matrix {
    let mut out = [[0.0; 4]; 4];
    for (col, out_col) in out.iter_mut().enumerate() {
        for (row, cell) in out_col.iter_mut().enumerate() {
            *cell = (0..4).map(|k| a[k][row] * b[col][k]).sum();
        }
    }
    out
}

/// Reads a GLB file's triangles in cadloop's frame: every mesh of the
/// default scene placed by its nodes, glTF's Y-up metres turned back into
/// Z-up millimetres.
pub fn read(path: &Path) -> Result<Mesh, GlbError> {
    let bytes = std::fs::read(path).map_err(|source| GlbError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let gltf = gltf::Gltf::from_slice(&bytes).map_err(|source| GlbError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let content = |problem: &str| GlbError::Content {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    let blob = gltf.blob.as_deref();
    let scene = gltf
        .default_scene()
        .or_else(|| gltf.scenes().next())
        .ok_or_else(|| content("it has no scene"))?;
    // Back from glTF's frame: metres to mm, Y-up to Z-up: (x, y, z) → (x, −z, y).
    let k = 1.0 / MM_TO_M;
    let to_cadloop: Matrix = [
        [k, 0.0, 0.0, 0.0],
        [0.0, 0.0, k, 0.0],
        [0.0, -k, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let mut mesh = Mesh::default();
    let mut stack: Vec<(gltf::Node, Matrix)> = scene.nodes().map(|n| (n, to_cadloop)).collect();
    while let Some((node, parent)) = stack.pop() {
        let local = node.transform().matrix().map(|c| c.map(f64::from));
        let world = multiply(&parent, &local);
        if let Some(m) = node.mesh() {
            add_mesh(&mut mesh, &m, &world, blob).map_err(|p| content(&p))?;
        }
        stack.extend(node.children().map(|child| (child, world)));
    }
    if mesh.triangles.is_empty() {
        return Err(content("its scene holds no triangles"));
    }
    Ok(mesh)
}

/// Appends the triangle primitives of `m`, placed by `world`.
fn add_mesh(
    mesh: &mut Mesh,
    m: &gltf::Mesh,
    world: &Matrix,
    blob: Option<&[u8]>,
) -> Result<(), String> {
    for primitive in m.primitives() {
        if primitive.mode() != gltf::mesh::Mode::Triangles {
            continue;
        }
        let reader = primitive.reader(|buffer| match buffer.source() {
            gltf::buffer::Source::Bin => blob,
            gltf::buffer::Source::Uri(_) => None,
        });
        let positions: Vec<[f32; 3]> = reader
            .read_positions()
            .ok_or("a primitive's positions are missing or outside the file")?
            .map(|p| {
                let p = p.map(f64::from);
                std::array::from_fn(|row| {
                    (world[0][row] * p[0]
                        + world[1][row] * p[1]
                        + world[2][row] * p[2]
                        + world[3][row]) as f32
                })
            })
            .collect();
        let base = mesh.vertices.len() as u32;
        let count = positions.len() as u32;
        let indices: Vec<u32> = match reader.read_indices() {
            Some(indices) => indices.into_u32().collect(),
            None => (0..count).collect(),
        };
        if let Some(bad) = indices.iter().find(|&&i| i >= count) {
            return Err(format!(
                "an index ({bad}) is past the primitive's {count} vertices"
            ));
        }
        // A mirroring transform turns the winding; keep the faces outward.
        let mirrored = determinant(world) < 0.0;
        mesh.triangles.extend(indices.chunks_exact(3).map(|t| {
            if mirrored {
                [base + t[0], base + t[2], base + t[1]]
            } else {
                [base + t[0], base + t[1], base + t[2]]
            }
        }));
        mesh.vertices.extend(positions);
    }
    Ok(())
}

/// The determinant of the upper 3 × 3 (its sign: whether it mirrors).
fn determinant(m: &Matrix) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[2][1] * m[1][2])
        - m[1][0] * (m[0][1] * m[2][2] - m[2][1] * m[0][2])
        + m[2][0] * (m[0][1] * m[1][2] - m[1][1] * m[0][2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tetrahedron() -> Mesh {
        Mesh {
            vertices: vec![
                [0.0, 0.0, 0.0],
                [40.0, 0.0, 0.0],
                [0.0, 20.0, 0.0],
                [0.0, 0.0, 10.0],
            ],
            triangles: vec![[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]],
            closed: true,
            marked: Vec::new(),
            parts: Vec::new(),
        }
    }

    #[test]
    fn a_written_file_reads_back_as_the_same_triangles_in_millimetres() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.glb");
        write(&tetrahedron(), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], b"glTF");
        assert_eq!(bytes.len() % 4, 0);
        let back = read(&path).unwrap();
        assert_eq!(back.triangles.len(), 4);
        assert_eq!(back.vertices.len(), 12);
        let source = tetrahedron();
        for (t, tri) in back.triangles.iter().enumerate() {
            for (corner, &i) in tri.iter().enumerate() {
                let want = source.vertices[source.triangles[t][corner] as usize];
                let got = back.vertices[i as usize];
                for axis in 0..3 {
                    assert!((want[axis] - got[axis]).abs() < 1e-4, "{want:?} vs {got:?}");
                }
            }
        }
        let gltf = gltf::Gltf::from_slice(&bytes).unwrap();
        let extras = gltf.document.as_json().asset.extras.as_ref().unwrap().get();
        let extras: serde_json::Value = serde_json::from_str(extras).unwrap();
        assert_eq!(extras["size_mm"], json!([40.0, 20.0, 10.0]));
    }

    #[test]
    fn an_empty_mesh_or_a_broken_file_is_an_error() {
        let empty = Mesh {
            vertices: Vec::new(),
            triangles: Vec::new(),
            closed: true,
            marked: Vec::new(),
            parts: Vec::new(),
        };
        assert!(matches!(to_bytes(&empty, "t"), Err(GlbError::Empty)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.glb");
        std::fs::write(&path, b"glTF\x02\0\0\0nonsense").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("not a usable binary glTF"), "{err}");
    }
}
