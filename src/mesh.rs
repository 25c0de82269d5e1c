//! The triangle mesh that flows from the executor to the renderer (and later
//! the metrics): indexed vertices in mm, read from the worker's packed arrays,
//! written as binary STL and read from STL files (binary or ASCII).

use std::io::{Read, Seek, Write};
use std::path::Path;

/// An indexed triangle mesh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    pub vertices: Vec<[f32; 3]>,
    pub triangles: Vec<[u32; 3]>,
    /// The triangles enclose a solid and face outwards (true for the executor's
    /// meshes of valid solids), so faces turned away from a viewer are hidden.
    pub closed: bool,
    /// Polylines (in mm) the views draw in a contrasting colour over the
    /// shading: a refused shape's free (open) edges, where its gap is.
    pub marked: Vec<Vec<[f32; 3]>>,
    /// The named parts of a result of several, each its own mesh (this
    /// mesh is their union): model.glb has a node for each, the views
    /// colour each, and each has its STL in `parts/`. Empty for one part.
    pub parts: Vec<MeshPart>,
}

/// One named part of a mesh: its own triangles and colour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshPart {
    pub name: String,
    /// sRGB.
    pub color: [u8; 3],
    pub mesh: Mesh,
}

/// Where one part's mesh lies in a job's mesh, after the union's.
#[derive(Debug, Clone, PartialEq)]
pub struct PartLayout {
    pub name: String,
    /// sRGB.
    pub color: [u8; 3],
    /// `[first, count]`.
    pub vertices: [u64; 2],
    /// `[first, count]`.
    pub triangles: [u64; 2],
}

/// The folder of a result's per-part STL files, in a run or attempt folder.
pub const PARTS_DIR: &str = "parts";

/// The file names of parts in `PARTS_DIR`, in their order: the name in
/// lower case with `-` between words (`part-N` when it has no letters or
/// digits), `-2`, `-3`, … after a name taken already; `.stl`.
pub fn part_file_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    let mut files = Vec::new();
    for (index, name) in names.into_iter().enumerate() {
        let words: Vec<String> = name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        let mut stem = words.join("-");
        stem.truncate(48);
        let stem = stem.trim_end_matches('-').to_string();
        let stem = if stem.is_empty() {
            format!("part-{}", index + 1)
        } else {
            stem
        };
        let (mut file, mut n) = (stem.clone(), 1);
        while !taken.insert(file.clone()) {
            n += 1;
            file = format!("{stem}-{n}");
        }
        files.push(format!("{file}.stl"));
    }
    files
}

/// A mesh file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("vertex data is {0} bytes, not a multiple of 12 (three f32 per vertex)")]
    VertexBytes(usize),
    #[error("index data is {0} bytes, not a multiple of 12 (three u32 per triangle)")]
    IndexBytes(usize),
    #[error("triangle {triangle} refers to vertex {index}, but there are only {vertices}")]
    IndexOutOfRange {
        triangle: usize,
        index: u32,
        vertices: usize,
    },
    #[error("cannot read the STL file {}", path.display())]
    ReadStl {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    BadStl {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("the parts of the mesh do not fit it: {0}")]
    Parts(String),
    #[error("could not write {}", path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Mesh {
    /// An axis-aligned box from `lo` to `hi`: 12 triangles facing outwards.
    pub fn cuboid(lo: [f32; 3], hi: [f32; 3]) -> Mesh {
        let corner = |i: usize| [0, 1, 2].map(|k| if i >> k & 1 == 1 { hi[k] } else { lo[k] });
        let quads = [
            [0, 2, 3, 1],
            [4, 5, 7, 6],
            [0, 1, 5, 4],
            [2, 6, 7, 3],
            [0, 4, 6, 2],
            [1, 3, 7, 5],
        ];
        Mesh {
            vertices: (0..8).map(corner).collect(),
            triangles: quads
                .iter()
                .flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]])
                .collect(),
            closed: true,
            ..Mesh::default()
        }
    }

    /// The box around the corners of the triangles, `(lo, hi)`; `None`
    /// when there are no triangles.
    pub fn bounds(&self) -> Option<([f32; 3], [f32; 3])> {
        let mut corners = self
            .triangles
            .iter()
            .flatten()
            .map(|&i| self.vertices[i as usize]);
        let first = corners.next()?;
        Some(corners.fold((first, first), |(lo, hi), p| {
            (
                [0, 1, 2].map(|k| lo[k].min(p[k])),
                [0, 1, 2].map(|k| hi[k].max(p[k])),
            )
        }))
    }

    /// The volume the triangles enclose (the divergence theorem; its sign
    /// says whether they face outwards). Meaningful only for a watertight mesh.
    pub fn signed_volume(&self) -> f64 {
        self.triangles
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| self.vertices[i as usize].map(f64::from));
                (a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                    + a[2] * (b[0] * c[1] - b[1] * c[0]))
                    / 6.0
            })
            .sum()
    }

    /// Whether every edge, its vertices joined by position, belongs to
    /// exactly two triangles (STL files repeat vertices per triangle).
    pub fn is_watertight(&self) -> bool {
        let mut ids = std::collections::HashMap::new();
        let id: Vec<usize> = self
            .vertices
            .iter()
            .map(|v| {
                let next = ids.len();
                *ids.entry(v.map(f32::to_bits)).or_insert(next)
            })
            .collect();
        let mut edges: std::collections::HashMap<(usize, usize), u32> = Default::default();
        for t in &self.triangles {
            for k in 0..3 {
                let (a, b) = (id[t[k] as usize], id[t[(k + 1) % 3] as usize]);
                *edges.entry((a.min(b), a.max(b))).or_default() += 1;
            }
        }
        !edges.is_empty() && edges.values().all(|&n| n == 2)
    }

    /// Builds a mesh from little-endian packed arrays (f32 xyz, u32 triangle indices).
    pub fn from_le_bytes(vertex_bytes: &[u8], index_bytes: &[u8]) -> Result<Mesh, MeshError> {
        if !vertex_bytes.len().is_multiple_of(12) {
            return Err(MeshError::VertexBytes(vertex_bytes.len()));
        }
        if !index_bytes.len().is_multiple_of(12) {
            return Err(MeshError::IndexBytes(index_bytes.len()));
        }
        let f32_at = |b: &[u8], i: usize| f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let vertices: Vec<[f32; 3]> = vertex_bytes
            .chunks_exact(12)
            .map(|c| [f32_at(c, 0), f32_at(c, 4), f32_at(c, 8)])
            .collect();
        let triangles: Vec<[u32; 3]> = index_bytes
            .chunks_exact(12)
            .map(|c| [u32_at(c, 0), u32_at(c, 4), u32_at(c, 8)])
            .collect();
        for (triangle, tri) in triangles.iter().enumerate() {
            if let Some(&index) = tri.iter().find(|&&i| i as usize >= vertices.len()) {
                return Err(MeshError::IndexOutOfRange {
                    triangle,
                    index,
                    vertices: vertices.len(),
                });
            }
        }
        Ok(Mesh {
            vertices,
            triangles,
            ..Mesh::default()
        })
    }

    /// Splits off the parts that follow the union in a job's mesh.
    /// This mesh keeps what comes before the first part; each part's
    /// triangles must name only its own vertices.
    pub fn split_parts(&mut self, layout: &[PartLayout]) -> Result<(), MeshError> {
        let Some(first) = layout.first() else {
            return Ok(());
        };
        let (union_vertices, union_triangles) = (first.vertices[0], first.triangles[0]);
        let mut parts = Vec::with_capacity(layout.len());
        for PartLayout {
            name,
            color,
            vertices: [v0, vn],
            triangles: [t0, tn],
        } in layout
        {
            let bad = |what: &str| MeshError::Parts(format!("part {name:?}: {what}"));
            let vertices = usize::try_from(*v0)
                .ok()
                .zip(usize::try_from(v0 + vn).ok())
                .and_then(|(a, b)| self.vertices.get(a..b))
                .ok_or_else(|| bad("its vertices lie outside the mesh"))?;
            let triangles = usize::try_from(*t0)
                .ok()
                .zip(usize::try_from(t0 + tn).ok())
                .and_then(|(a, b)| self.triangles.get(a..b))
                .ok_or_else(|| bad("its triangles lie outside the mesh"))?;
            let base = *v0 as u32;
            let triangles = triangles
                .iter()
                .map(|t| {
                    t.iter()
                        .all(|&i| i >= base && u64::from(i - base) < *vn)
                        .then(|| t.map(|i| i - base))
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("a triangle names a vertex of another part"))?;
            parts.push(MeshPart {
                name: name.clone(),
                color: *color,
                mesh: Mesh {
                    vertices: vertices.to_vec(),
                    triangles,
                    closed: self.closed,
                    ..Mesh::default()
                },
            });
        }
        let keep_vertices = usize::try_from(union_vertices).unwrap_or(usize::MAX);
        let keep_triangles = usize::try_from(union_triangles).unwrap_or(usize::MAX);
        if self.triangles[..keep_triangles.min(self.triangles.len())]
            .iter()
            .any(|t| t.iter().any(|&i| i as usize >= keep_vertices))
        {
            return Err(MeshError::Parts(
                "the union's triangles name the parts' vertices".into(),
            ));
        }
        self.vertices.truncate(keep_vertices);
        self.triangles.truncate(keep_triangles);
        self.parts = parts;
        Ok(())
    }

    /// Writes each part's binary STL into `dir` under [`part_file_names`].
    pub fn write_part_stls(&self, dir: &Path) -> Result<(), MeshError> {
        let names = part_file_names(self.parts.iter().map(|p| p.name.as_str()));
        for (part, file) in self.parts.iter().zip(names) {
            part.mesh.write_stl(&dir.join(file))?;
        }
        Ok(())
    }

    /// Writes a binary STL with per-facet normals.
    pub fn write_stl(&self, path: &Path) -> Result<(), MeshError> {
        let io_err = |source| MeshError::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io_err)?;
        let mut out = std::io::BufWriter::new(file);
        let facets = self.triangles.iter().map(|tri| {
            let [a, b, c] = tri.map(|i| self.vertices[i as usize]);
            stl_io::Triangle {
                normal: stl_io::Normal::new(facet_normal(a, b, c)),
                vertices: [a, b, c].map(stl_io::Vertex::new),
            }
        });
        stl_io::write_stl(&mut out, facets).map_err(io_err)?;
        out.flush().map_err(io_err)
    }
}

/// Unit normal of a triangle by the right-hand rule; zero for a degenerate one.
pub(crate) fn facet_normal(a: [f32; 3], b: [f32; 3], c: [f32; 3]) -> [f32; 3] {
    let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
    let n = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    if len > 0.0 && len.is_finite() {
        n.map(|x| x / len)
    } else {
        [0.0; 3]
    }
}

/// Reads an STL file (binary or ASCII) into a mesh, one vertex per corner.
/// A binary file must be exactly as long as its triangle count says.
pub fn read_stl(path: &Path) -> Result<Mesh, MeshError> {
    let read_err = |source| MeshError::ReadStl {
        path: path.to_path_buf(),
        source,
    };
    let bad = |message: String| MeshError::BadStl {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let length = file.metadata().map_err(read_err)?.len();
    let mut head = [0u8; 84];
    let got = read_up_to(&mut file, &mut head).map_err(read_err)?;
    let looks_ascii = head[..got.min(5)] == *b"solid" && {
        // Binary files may also begin with "solid"; the size rule tells them apart.
        got < 84
            || 84 + 50 * u32::from_le_bytes([head[80], head[81], head[82], head[83]]) as u64
                != length
    };
    if !looks_ascii {
        if got < 84 {
            return Err(bad(format!(
                "{length} bytes is too short for an STL file (binary needs 84 or more)"
            )));
        }
        let count = u32::from_le_bytes([head[80], head[81], head[82], head[83]]) as u64;
        if 84 + 50 * count != length {
            return Err(bad(format!(
                "the binary header promises {count} triangles ({} bytes) but the file has {length} bytes: \
                 it is truncated or not an STL file",
                84 + 50 * count
            )));
        }
    }
    file.rewind().map_err(read_err)?;
    let mut reader = std::io::BufReader::new(file);
    let triangles = stl_io::create_stl_reader(&mut reader).map_err(|e| bad(e.to_string()))?;
    let mut mesh = Mesh::default();
    for (n, triangle) in triangles.enumerate() {
        let triangle = triangle.map_err(|e| bad(format!("triangle {}: {e}", n + 1)))?;
        let base = mesh.vertices.len() as u32;
        mesh.vertices.extend(triangle.vertices.iter().map(|v| v.0));
        mesh.triangles.push([base, base + 1, base + 2]);
    }
    Ok(mesh)
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed little-endian arrays `Mesh::from_le_bytes` reads (the
    /// worker's side writes them in Python).
    fn to_le_bytes(mesh: &Mesh) -> (Vec<u8>, Vec<u8>) {
        let vertex_bytes = mesh
            .vertices
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let index_bytes = mesh
            .triangles
            .iter()
            .flatten()
            .flat_map(|i| i.to_le_bytes())
            .collect();
        (vertex_bytes, index_bytes)
    }

    fn square() -> Mesh {
        Mesh {
            vertices: vec![[0., 0., 0.], [1., 0., 0.], [1., 1., 0.], [0., 1., 0.]],
            triangles: vec![[0, 1, 2], [0, 2, 3]],
            closed: false,
            marked: Vec::new(),
            parts: Vec::new(),
        }
    }

    #[test]
    fn the_parts_after_the_union_are_split_off_each_on_its_own_vertices() {
        let cube = |x: f32| Mesh::cuboid([x, 0.0, 0.0], [x + 1.0, 1.0, 1.0]);
        let mut joined = cube(0.0);
        let union_vertices = joined.vertices.len() as u64;
        let mut layout = Vec::new();
        for (k, x) in [0.0f32, 2.0].into_iter().enumerate() {
            let part = cube(x);
            let base = joined.vertices.len() as u32;
            layout.push(PartLayout {
                name: format!("p{k}"),
                color: [k as u8, 0, 0],
                vertices: [u64::from(base), part.vertices.len() as u64],
                triangles: [joined.triangles.len() as u64, part.triangles.len() as u64],
            });
            joined.vertices.extend(&part.vertices);
            joined
                .triangles
                .extend(part.triangles.iter().map(|t| t.map(|i| i + base)));
        }
        let mut mesh = joined.clone();
        mesh.split_parts(&layout).unwrap();
        assert_eq!(mesh.vertices.len() as u64, union_vertices);
        assert_eq!(mesh.triangles, cube(0.0).triangles);
        assert_eq!(mesh.parts.len(), 2);
        assert_eq!(mesh.parts[1].mesh.vertices, cube(2.0).vertices);
        assert_eq!(mesh.parts[1].mesh.triangles, cube(2.0).triangles);
        assert_eq!(mesh.parts[1].color, [1, 0, 0]);
        // A part whose triangles reach another's vertices, or past the mesh, is refused.
        let mut bad = layout.clone();
        bad[1].vertices = [bad[1].vertices[0] + 1, 7];
        assert!(joined.clone().split_parts(&bad).is_err());
        let mut bad = layout;
        bad[0].triangles[1] = 10_000;
        assert!(joined.clone().split_parts(&bad).is_err());
        assert_eq!(
            part_file_names(["Leaf A", "leaf-a", "", "Ø"]),
            ["leaf-a.stl", "leaf-a-2.stl", "part-3.stl", "part-4.stl"]
        );
    }

    #[test]
    fn bounds_cover_the_triangles_corners_only() {
        let mut mesh = Mesh::cuboid([-1.0, 2.0, 0.5], [3.0, 4.0, 0.75]);
        // A vertex no triangle uses does not widen the box.
        mesh.vertices.push([100.0, -100.0, 100.0]);
        assert_eq!(mesh.bounds(), Some(([-1.0, 2.0, 0.5], [3.0, 4.0, 0.75])));
        assert_eq!(Mesh::default().bounds(), None);
    }

    #[test]
    fn packed_bytes_round_trip() {
        let mesh = square();
        let (v, i) = to_le_bytes(&mesh);
        assert_eq!(v.len(), 48);
        assert_eq!(Mesh::from_le_bytes(&v, &i).unwrap(), mesh);
    }

    #[test]
    fn bad_packing_and_dangling_indices_are_refused() {
        let (v, i) = to_le_bytes(&square());
        assert!(matches!(
            Mesh::from_le_bytes(&v[..47], &i),
            Err(MeshError::VertexBytes(47))
        ));
        assert!(matches!(
            Mesh::from_le_bytes(&v[..36], &i),
            Err(MeshError::IndexOutOfRange { index: 3, .. })
        ));
    }

    #[test]
    fn stl_has_one_facet_per_triangle_and_upward_normals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sq.stl");
        square().write_stl(&path).unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        let read = stl_io::read_stl(&mut file).unwrap();
        assert_eq!(read.faces.len(), 2);
        for face in &read.faces {
            assert_eq!(face.normal.0, [0.0, 0.0, 1.0]);
        }
    }

    #[test]
    fn stl_files_read_back_and_truncated_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.stl");
        Mesh::cuboid([0., 0., 0.], [40., 20., 10.])
            .write_stl(&path)
            .unwrap();
        let mesh = read_stl(&path).unwrap();
        assert_eq!(mesh.triangles.len(), 12);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
        let err = read_stl(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        std::fs::write(&path, b"tiny").unwrap();
        assert!(read_stl(&path)
            .unwrap_err()
            .to_string()
            .contains("too short"));

        let ascii =
            "solid t\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\n\
                     endloop\nendfacet\nendsolid t\n";
        std::fs::write(&path, ascii).unwrap();
        assert_eq!(read_stl(&path).unwrap().triangles.len(), 1);
        std::fs::write(
            &path,
            "solid t\nfacet normal 0 0 1\nouter loop\nvertex 0 0\n",
        )
        .unwrap();
        assert!(matches!(read_stl(&path), Err(MeshError::BadStl { .. })));
    }
}
