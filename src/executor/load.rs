//! Meshes from model files, for `cadloop render` and bench scoring: STL,
//! OBJ and GLB read directly, STEP and FCStd meshed by FreeCAD on a worker pool
//! that starts the first time one is needed and then serves every file.

use std::path::{Path, PathBuf};

use tokio::sync::OnceCell;

use super::{ErrorKind, ExecutorError, ExecutorSettings, Job, Outcome, Pool};
use crate::mesh::Mesh;

/// Why a model file gave no mesh.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read a .{extension} file; give .stl, .obj, .glb, .step/.stp or .FCStd", path.display())]
    Unsupported { path: PathBuf, extension: String },
    #[error("cannot read the model {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Stl(#[from] crate::mesh::MeshError),
    #[error("{}: not a readable OBJ file", path.display())]
    Obj {
        path: PathBuf,
        #[source]
        source: tobj::LoadError,
    },
    #[error(transparent)]
    Glb(#[from] crate::glb::GlbError),
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    #[error("FreeCAD could not mesh {} ({kind}): {message}", path.display())]
    FreeCad {
        path: PathBuf,
        kind: ErrorKind,
        message: String,
    },
}

/// Reads model files; holds the FreeCAD pool once a STEP or FCStd needed it.
pub struct MeshLoader {
    settings: ExecutorSettings,
    pool: OnceCell<Pool>,
}

impl MeshLoader {
    /// `settings`: for the pool, should a file need FreeCAD.
    pub fn new(settings: ExecutorSettings) -> MeshLoader {
        MeshLoader {
            settings,
            pool: OnceCell::new(),
        }
    }

    /// Reads the mesh in `path`: STL, OBJ and GLB here; STEP and FCStd
    /// tessellated by a FreeCAD worker.
    pub async fn load(&self, path: &Path) -> Result<Mesh, LoadError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match extension.as_str() {
            "stl" => Ok(crate::mesh::read_stl(path)?),
            "obj" => read_obj(path),
            "glb" => Ok(crate::glb::read(path)?),
            "step" | "stp" | "fcstd" => self.mesh_with_freecad(path).await,
            _ => Err(LoadError::Unsupported {
                path: path.to_path_buf(),
                extension,
            }),
        }
    }

    /// Stops the pool, if one was started.
    pub async fn shutdown(self) {
        if let Some(pool) = self.pool.into_inner() {
            pool.shutdown().await;
        }
    }

    /// Meshes a STEP or FCStd file by running a small import script on a worker.
    async fn mesh_with_freecad(&self, model: &Path) -> Result<Mesh, LoadError> {
        let path = model.canonicalize().map_err(|source| LoadError::Read {
            path: model.to_path_buf(),
            source,
        })?;
        // The job reads its own copy of the model, by file name.
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let literal = serde_json::to_string(&name).expect("a string serialises");
        let code = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("fcstd"))
        {
            format!(
                "import FreeCAD, Part\nsource = FreeCAD.openDocument({literal})\n\
                 solid = [o for o in source.Objects if hasattr(o, 'Shape') and o.Shape.Solids]\n\
                 names = {{o.Name for o in solid}}\n\
                 result = Part.makeCompound([o.Shape for o in solid if not any(u.Name in names for u in o.InList)])\n"
            )
        } else {
            format!("import Part\nresult = Part.read({literal})\n")
        };
        let scratch = tempfile::tempdir().map_err(|source| LoadError::Read {
            path: std::env::temp_dir(),
            source,
        })?;
        let pool = self
            .pool
            .get_or_try_init(|| Pool::start(self.settings.clone()))
            .await?;
        let output = pool
            .run(Job {
                code,
                dir: scratch.path().to_path_buf(),
                timeout: None,
                inputs: vec![path.clone()],
                checks: Vec::new(),
            })
            .await?;
        match (output.mesh, output.report.outcome) {
            (Some(mesh), _) => Ok(mesh),
            (None, Outcome::Error { kind, message, .. }) => Err(LoadError::FreeCad {
                path: model.to_path_buf(),
                kind,
                message,
            }),
            (None, Outcome::Ok { .. }) => Err(LoadError::FreeCad {
                path: model.to_path_buf(),
                kind: ErrorKind::NoSolid,
                message: "FreeCAD returned no mesh".into(),
            }),
        }
    }
}

/// An OBJ file, triangulated, all its objects in one mesh.
fn read_obj(path: &Path) -> Result<Mesh, LoadError> {
    let options = tobj::LoadOptions {
        triangulate: true,
        single_index: true,
        ..Default::default()
    };
    let (models, _) = tobj::load_obj(path, &options).map_err(|source| LoadError::Obj {
        path: path.to_path_buf(),
        source,
    })?;
    let mut mesh = Mesh::default();
    for model in models {
        let base = mesh.vertices.len() as u32;
        let positions = model.mesh.positions.chunks_exact(3);
        mesh.vertices.extend(positions.map(|p| [p[0], p[1], p[2]]));
        let indices = model.mesh.indices.chunks_exact(3);
        mesh.triangles
            .extend(indices.map(|t| [base + t[0], base + t[1], base + t[2]]));
    }
    Ok(mesh)
}
