// Images and files in messages (docs/protocol.md §9). An upload's bytes need the access
// token, so they are fetched here and shown through `blob:` URLs, kept in memory per
// upload: every thumbnail for the session, the last few full images; all revoked on
// sign-out.

import { fetchBlob, onSessionChange } from './api.js';
import { h } from './dom.js';

/** `upload id` → Promise of a blob URL, for thumbnails. */
const thumbnails = new Map();
/** `upload id` → Promise of a blob URL, for full images, oldest first. */
const originals = new Map();
const ORIGINALS_KEPT = 4;

function revokeAll(map) {
  for (const promise of map.values()) promise.then((url) => URL.revokeObjectURL(url)).catch(() => {});
  map.clear();
}

onSessionChange((signedIn) => {
  if (signedIn) return;
  revokeAll(thumbnails);
  revokeAll(originals);
});

function cached(map, id, path) {
  let promise = map.get(id);
  if (!promise) {
    promise = fetchBlob(path).then((blob) => URL.createObjectURL(blob));
    // A failure is not remembered: the next render asks again.
    promise.catch(() => map.get(id) === promise && map.delete(id));
    map.set(id, promise);
  }
  return promise;
}

/** A blob URL of the thumbnail of image upload `id`. */
export function thumbnailUrl(id) {
  return cached(thumbnails, id, `/uploads/${encodeURIComponent(id)}/thumbnail`);
}

/** A blob URL of the whole upload `id` (the last few are kept). */
export function originalUrl(id) {
  if (originals.has(id)) {
    // Most recently used goes last.
    const promise = originals.get(id);
    originals.delete(id);
    originals.set(id, promise);
    return promise;
  }
  const promise = cached(originals, id, `/uploads/${encodeURIComponent(id)}`);
  while (originals.size > ORIGINALS_KEPT) {
    const [oldest, old] = originals.entries().next().value;
    originals.delete(oldest);
    old.then((url) => URL.revokeObjectURL(url)).catch(() => {});
  }
  return promise;
}

/** "812 bytes", "14 KB", "1.2 MB", "3.4 GB". */
export function humanSize(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '';
  if (bytes < 1000) return `${bytes} byte${bytes === 1 ? '' : 's'}`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1).replace(/\.0$/, '') : Math.round(value)} ${units[unit]}`;
}

/** The size an image is shown at inline: within 320 × 320, never larger than it is. */
export function fitted(width, height, box = 320) {
  if (!(width > 0 && height > 0)) return { width: box, height: Math.round(box * 0.75) };
  const scale = Math.min(1, box / width, box / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** Saves upload `content` ({upload_id, name}) under its name, fetched with the token. */
export async function download(content) {
  const blob = await fetchBlob(`/uploads/${encodeURIComponent(content.upload_id)}`);
  const url = URL.createObjectURL(blob);
  const link = h('a', { href: url, download: content.name || 'file', hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has taken the bytes once the download started.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** What a failed upload says in its bubble. */
export function uploadErrorText(err) {
  if (!err) return 'The upload failed.';
  if (err.code === 'payload_too_large') {
    const limit = /limit of (\d+) bytes/.exec(err.message || '');
    return limit ? `This file is too large to send (the limit is ${humanSize(Number(limit[1]))}).` : 'This file is too large to send.';
  }
  if (err.code === 'upload_quota_exceeded') return 'Your storage for files is full: this file would go over your quota.';
  if (err.code === 'network_error') return 'The upload broke off: cannot reach the server.';
  if (err.code === 'request_timeout') return 'The upload took too long and was stopped.';
  return err.message || 'The upload failed.';
}

/**
 * The full image of `content` over the page: closed by its button, Escape or a click
 * beside the image; the focus goes back where it was.
 */
export function openLightbox(content) {
  const returnFocus = document.activeElement;
  const image = h('img', { class: 'lightbox-image', 'data-testid': 'lightbox-image', alt: content.name || 'Image' });
  const status = h('p', { class: 'lightbox-status', role: 'status', text: 'Loading…' });
  const close = h('button', { type: 'button', class: 'lightbox-close', 'data-testid': 'lightbox-close', 'aria-label': 'Close image', text: '✕' });
  const caption = h('p', { class: 'lightbox-caption', text: content.name || '' });
  const overlay = h(
    'div',
    { class: 'lightbox', role: 'dialog', 'aria-modal': 'true', 'aria-label': content.name || 'Image', 'data-testid': 'lightbox', tabindex: '-1' },
    close,
    h('figure', { class: 'lightbox-figure' }, status, image, caption),
  );
  const done = () => {
    overlay.remove();
    document.removeEventListener('keydown', onKey, true);
    if (returnFocus && returnFocus.isConnected) returnFocus.focus();
  };
  const onKey = (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      done();
    } else if (event.key === 'Tab') {
      // A modal dialog keeps the focus: its close button is all there is to reach.
      event.preventDefault();
      close.focus();
    }
  };
  close.addEventListener('click', done);
  overlay.addEventListener('click', (event) => {
    if (event.target === overlay || event.target.classList.contains('lightbox-figure')) done();
  });
  document.addEventListener('keydown', onKey, true);
  document.body.append(overlay);
  close.focus();
  originalUrl(content.upload_id)
    .then((url) => {
      image.src = url;
      status.remove();
    })
    .catch((err) => {
      status.textContent = `The image cannot be shown: ${err.message || err}`;
    });
  return done;
}
