//! What an uploaded image needs to be shown inline: its size as displayed (after the
//! camera's orientation tag) and a small thumbnail. Decoding is bounded in pixels and
//! memory, so a small file that claims to be enormous is refused instead of decoded.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// The thumbnail fits in this square.
pub const THUMBNAIL_EDGE: u32 = 320;
/// Larger images are stored and served as files, without a preview.
const MAX_EDGE: u32 = 12_000;
const MAX_DECODE_BYTES: u64 = 128 * 1024 * 1024;

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
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation()?;
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
    }
}
