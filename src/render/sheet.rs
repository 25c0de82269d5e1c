//! The contact sheet (the seven views in a labelled grid), the font of its
//! labels, and the views written as PNG files.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};

use super::{RenderError, Views, SHEET_FILE, VIEWS_DIR};

/// Height of the label band above each tile of the sheet.
const LABEL_BAND: u32 = 30;
const SHEET_COLUMNS: u32 = 4;
const SHEET_ROWS: u32 = 2;

/// Fonts tried for the sheet's labels, after `CADLOOP_FONT`.
const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Loads the labels' font: `CADLOOP_FONT`, else a Debian font.
pub fn load_font() -> Result<ab_glyph::FontVec, RenderError> {
    let candidates: Vec<PathBuf> = std::env::var_os("CADLOOP_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(FONT_PATHS.iter().map(PathBuf::from))
        .collect();
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            return ab_glyph::FontVec::try_from_vec(bytes)
                .map_err(|_| RenderError::BadFont { path });
        }
    }
    Err(RenderError::NoFont)
}

/// A 4×2 contact sheet: the seven views, each under its label.
pub fn contact_sheet(views: &Views, font: &ab_glyph::FontVec) -> RgbImage {
    let tile = views.images.first().map_or(384, |(_, img)| img.width());
    let width = tile * SHEET_COLUMNS + (SHEET_COLUMNS + 1);
    let height = (tile + LABEL_BAND) * SHEET_ROWS + (SHEET_ROWS + 1);
    let mut sheet = RgbImage::from_pixel(width, height, Rgb([200, 200, 205]));
    for (k, (view, image)) in views.images.iter().enumerate() {
        let k = k as u32;
        let x0 = 1 + (k % SHEET_COLUMNS) * (tile + 1);
        let y0 = 1 + (k / SHEET_COLUMNS) * (tile + LABEL_BAND + 1);
        for y in 0..LABEL_BAND {
            for x in 0..tile {
                sheet.put_pixel(x0 + x, y0 + y, Rgb([238, 238, 242]));
            }
        }
        draw_label(&mut sheet, font, view.title(), x0 + 10, y0, LABEL_BAND);
        image::imageops::replace(&mut sheet, image, x0 as i64, (y0 + LABEL_BAND) as i64);
    }
    // The eighth tile is a plain panel; for a marked mesh, it says what the red is.
    let x0 = 1 + 3 * (tile + 1);
    let y0 = 1 + (tile + LABEL_BAND + 1);
    for y in y0..y0 + tile + LABEL_BAND {
        for x in x0..x0 + tile {
            sheet.put_pixel(x, y, Rgb([245, 245, 248]));
        }
    }
    if views.marked {
        let swatch = LABEL_BAND / 2;
        for y in 0..swatch {
            for x in 0..swatch {
                sheet.put_pixel(x0 + 10 + x, y0 + swatch / 2 + y, Rgb(super::MARK));
            }
        }
        for (k, text) in MARK_LEGEND.iter().enumerate() {
            let x = if k == 0 { x0 + 16 + swatch } else { x0 + 10 };
            draw_label(
                &mut sheet,
                font,
                text,
                x,
                y0 + k as u32 * LABEL_BAND,
                LABEL_BAND,
            );
        }
    }
    sheet
}

/// The legend of a marked mesh's sheet, a line each.
const MARK_LEGEND: [&str; 3] = [
    "where the surface is open:",
    "free edges, and the edges",
    "that would close a profile",
];

/// Draws `text` in dark grey, vertically centred in a band of height `band`.
fn draw_label(
    image: &mut RgbImage,
    font: &ab_glyph::FontVec,
    text: &str,
    x: u32,
    y: u32,
    band: u32,
) {
    use ab_glyph::{Font, ScaleFont};
    let scale = ab_glyph::PxScale::from(band as f32 * 0.62);
    let scaled = font.as_scaled(scale);
    let baseline = y as f32 + (band as f32 + scaled.ascent() + scaled.descent()) / 2.0;
    let mut caret = x as f32;
    let mut previous = None;
    for ch in text.chars() {
        let id = font.glyph_id(ch);
        if let Some(prev) = previous {
            caret += scaled.kern(prev, id);
        }
        let glyph = id.with_scale_and_position(scale, ab_glyph::point(caret, baseline));
        caret += scaled.h_advance(id);
        previous = Some(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let px = bounds.min.x as i64 + gx as i64;
            let py = bounds.min.y as i64 + gy as i64;
            if px < 0 || py < 0 || px >= image.width() as i64 || py >= image.height() as i64 {
                return;
            }
            let pixel = image.get_pixel_mut(px as u32, py as u32);
            let c = coverage.clamp(0.0, 1.0);
            for k in 0..3 {
                let ink = 30.0;
                pixel.0[k] = (pixel.0[k] as f32 * (1.0 - c) + ink * c).round() as u8;
            }
        });
    }
}

/// Writes `DIR/views/<name>.png` and `DIR/sheet.png`, each through a
/// temporary file and a rename so no reader sees half a PNG.
pub fn write_views(dir: &Path, views: &Views, sheet: &RgbImage) -> Result<(), RenderError> {
    let views_dir = dir.join(VIEWS_DIR);
    std::fs::create_dir_all(&views_dir).map_err(|source| RenderError::Write {
        path: views_dir.clone(),
        source,
    })?;
    for (view, image) in &views.images {
        write_png(&views_dir.join(format!("{}.png", view.name())), image)?;
    }
    write_png(&dir.join(SHEET_FILE), sheet)
}

/// Encodes a PNG atomically (temporary file in the same folder, then rename).
pub fn write_png(path: &Path, image: &RgbImage) -> Result<(), RenderError> {
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|source| RenderError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    crate::files::write_atomically(path, &png).map_err(|source| RenderError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::l_bracket;
    use super::super::{render, RenderSettings};
    use super::*;

    #[test]
    fn the_sheet_has_seven_labelled_tiles() {
        let views = render(&l_bracket(), &RenderSettings::default()).unwrap();
        let font = load_font().expect("fonts-dejavu-core is installed by the set-up");
        let sheet = contact_sheet(&views, &font);
        assert_eq!(
            sheet.dimensions(),
            (4 * 384 + 5, 2 * (384 + LABEL_BAND) + 3)
        );
        for k in 0..8u32 {
            let x0 = 1 + (k % 4) * 385;
            let y0 = 1 + (k / 4) * (384 + LABEL_BAND + 1);
            let ink = (x0..x0 + 150)
                .flat_map(|x| (y0..y0 + LABEL_BAND).map(move |y| (x, y)))
                .filter(|&(x, y)| sheet.get_pixel(x, y).0[0] < 100)
                .count();
            let tile = image::imageops::crop_imm(&sheet, x0, y0 + LABEL_BAND, 384, 384).to_image();
            if k < 7 {
                assert!(ink > 20, "tile {k} has a label: {ink} ink pixels");
                assert_eq!(tile, views.images[k as usize].1, "tile {k} is its view");
            } else {
                assert_eq!(ink, 0, "the eighth tile is empty");
            }
        }
    }
}
