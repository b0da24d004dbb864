//! What an uploaded image needs to be shown inline: its size as displayed (after the
//! camera's orientation tag) and a small thumbnail. Decoding is bounded in pixels and
//! memory, so a small file that claims to be enormous is refused instead of decoded.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, metadata::Orientation};

/// The thumbnail fits in this square.
pub const THUMBNAIL_EDGE: u32 = 320;
/// Larger images are stored and served as files, without a preview.
const MAX_EDGE: u32 = 12_000;
const MAX_DECODE_BYTES: u64 = 128 * 1024 * 1024;
/// Bounds the decoding time as the bytes bound its memory (a 40-megapixel photo passes).
const MAX_PIXELS: u64 = 40_000_000;

fn too_large() -> image::ImageError {
    image::ImageError::Limits(image::error::LimitError::from_kind(image::error::LimitErrorKind::DimensionError))
}

#[derive(Debug)]
pub struct Preview {
    pub width: u32,
    pub height: u32,
    pub thumbnail: Vec<u8>,
    pub thumbnail_mime: &'static str,
}

/// Decodes `bytes` and makes the preview; an error when they are not an image this
/// server can decode within its limits.
pub fn preview(bytes: &[u8]) -> Result<Preview, image::ImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_EDGE);
    limits.max_image_height = Some(MAX_EDGE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(too_large());
    }
    // `from_decoder` does not hold the decoded buffer to the limits (only `decode`
    // does): reserve it here, twice when turning it a quarter makes a second buffer.
    let orientation = decoder.orientation()?;
    limits.reserve(decoder.total_bytes())?;
    if matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    ) {
        limits.reserve(decoder.total_bytes())?;
    }
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    let small = if width > THUMBNAIL_EDGE || height > THUMBNAIL_EDGE {
        image.thumbnail(THUMBNAIL_EDGE, THUMBNAIL_EDGE)
    } else {
        image
    };
    let mut thumbnail = Vec::new();
    // PNG keeps transparency; JPEG is a tenth of the size for everything else.
    let thumbnail_mime = if small.color().has_alpha() {
        small.write_to(&mut Cursor::new(&mut thumbnail), image::ImageFormat::Png)?;
        "image/png"
    } else {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut thumbnail, 80);
        small.to_rgb8().write_with_encoder(encoder)?;
        "image/jpeg"
    };
    Ok(Preview { width, height, thumbnail, thumbnail_mime })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, alpha: bool) -> Vec<u8> {
        let image = if alpha {
            DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(width, height, image::Rgba([10, 20, 30, 128])))
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(width, height, image::Rgb([200, 100, 50])))
        };
        let mut bytes = Vec::new();
        image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        bytes
    }

    #[test]
    fn a_large_image_gets_a_thumbnail_that_fits_and_keeps_its_shape() {
        let preview = preview(&png(1280, 640, false)).unwrap();
        assert_eq!((preview.width, preview.height), (1280, 640));
        assert_eq!(preview.thumbnail_mime, "image/jpeg");
        let thumbnail = image::load_from_memory(&preview.thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (320, 160));
    }

    #[test]
    fn transparency_survives_and_small_images_are_not_enlarged() {
        let preview = preview(&png(40, 30, true)).unwrap();
        assert_eq!(preview.thumbnail_mime, "image/png");
        let thumbnail = image::load_from_memory(&preview.thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (40, 30));
        assert!(thumbnail.color().has_alpha());
    }

    #[test]
    fn bytes_that_are_not_an_image_or_claim_too_many_pixels_are_refused() {
        assert!(preview(b"<html>not an image</html>").is_err());
        let mut truncated = png(100, 100, false);
        truncated.truncate(60);
        assert!(preview(&truncated).is_err());
        // A valid image wider than any accepted: a few kilobytes of PNG.
        let too_wide = png(MAX_EDGE + 1, 1, false);
        assert!(matches!(preview(&too_wide), Err(image::ImageError::Limits(_))));
        assert!(preview(&png(MAX_EDGE, 1, false)).is_ok());
        // Within the edge limit but 48 megapixels, in a quarter of a megabyte of PNG.
        let mut many = Vec::new();
        DynamicImage::ImageLuma8(image::GrayImage::new(8_000, 6_000))
            .write_to(&mut Cursor::new(&mut many), image::ImageFormat::Png)
            .unwrap();
        assert!(many.len() < 1_000_000, "{} bytes", many.len());
        assert!(matches!(preview(&many), Err(image::ImageError::Limits(_))));
        // Under 40 megapixels, but 16-bit RGBA decodes to 138 MB, over the 128 MiB budget.
        let mut deep = Vec::new();
        DynamicImage::ImageRgba16(image::ImageBuffer::new(4_200, 4_100))
            .write_to(&mut Cursor::new(&mut deep), image::ImageFormat::Png)
            .unwrap();
        assert!(matches!(preview(&deep), Err(image::ImageError::Limits(_))));
    }
}
