//! The images' way in: decoding a file, Pillow's bicubic resize, rescale
//! and normalise into the vision encoder's CHW input.

use std::path::Path;

use image::RgbImage;

use super::{CaptionError, MAX_IMAGE_SIDE};
/// BLIP's image preprocessing, as transformers' BlipImageProcessor does it
/// with Pillow: bicubic resize to `size`², rescale, normalise, CHW.
pub fn preprocess(
    image: &RgbImage,
    size: u32,
    mean: [f32; 3],
    std: [f32; 3],
    rescale: f32,
) -> Vec<f32> {
    let resized;
    let image = if image.dimensions() == (size, size) {
        image
    } else {
        resized = resize_like_pillow(image, size, size);
        &resized
    };
    let plane = (size * size) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (pixel.0[c] as f32 * rescale - mean[c]) / std[c];
        }
    }
    out
}

/// Pillow's fixed-point precision for 8-bit resampling.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic kernel (a = −0.5).
fn bicubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// For each output position: the first input index and the fixed-point
/// weights of the inputs it reads, as Pillow computes them (the kernel is
/// widened by the scale when shrinking, so it averages instead of skipping).
fn resample_weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> = (xmin..xmax)
                .map(|x| bicubic((x as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            let one = (1i64 << PRECISION_BITS) as f64;
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { *w };
                    if w < 0.0 {
                        (-0.5 + w * one) as i64
                    } else {
                        (0.5 + w * one) as i64
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(value: i64) -> u8 {
    (value >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes as Pillow's `Image.resize(…, BICUBIC)` does for RGB: a horizontal
/// then a vertical fixed-point pass through an 8-bit intermediate image, so the
/// result matches transformers' preprocessing.
pub fn resize_like_pillow(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let rounding = 1i64 << (PRECISION_BITS - 1);
    let columns = resample_weights(in_w, out_w);
    let rows = resample_weights(in_h, out_h);
    let src = image.as_raw();
    let mut middle = vec![0u8; out_w * in_h * 3];
    if in_w == out_w {
        middle.copy_from_slice(src);
    } else {
        for y in 0..in_h {
            for (x, (first, weights)) in columns.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = rounding;
                    for (i, w) in weights.iter().enumerate() {
                        acc += src[(y * in_w + first + i) * 3 + c] as i64 * w;
                    }
                    middle[(y * out_w + x) * 3 + c] = clip8(acc);
                }
            }
        }
    }
    if in_h == out_h {
        return RgbImage::from_raw(width, height, middle).expect("sized buffer");
    }
    let mut out = vec![0u8; out_w * out_h * 3];
    for (y, (first, weights)) in rows.iter().enumerate() {
        for x in 0..out_w {
            for c in 0..3 {
                let mut acc = rounding;
                for (i, w) in weights.iter().enumerate() {
                    acc += middle[((first + i) * out_w + x) * 3 + c] as i64 * w;
                }
                out[(y * out_w + x) * 3 + c] = clip8(acc);
            }
        }
    }
    RgbImage::from_raw(width, height, out).expect("sized buffer")
}

/// Reads an image file as RGB, refusing sizes beyond [`MAX_IMAGE_SIDE`]
/// before decoding them.
pub fn load_image(path: &Path) -> Result<RgbImage, CaptionError> {
    let image_err = |source| CaptionError::Image {
        path: path.to_path_buf(),
        source,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| image_err(image::ImageError::IoError(e)))?
        .with_guessed_format()
        .map_err(|e| image_err(image::ImageError::IoError(e)))?;
    let (width, height) = reader.into_dimensions().map_err(image_err)?;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(CaptionError::ImageTooLarge {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    let reader = image::ImageReader::open(path)
        .map_err(|e| image_err(image::ImageError::IoError(e)))?
        .with_guessed_format()
        .map_err(|e| image_err(image::ImageError::IoError(e)))?;
    Ok(reader.decode().map_err(image_err)?.to_rgb8())
}
