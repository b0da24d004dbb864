// The REST client and the session: tokens live in memory; the refresh token is also
// kept in sessionStorage (this tab only, gone when the tab closes) so that a reload
// does not sign the user out. Refresh tokens rotate on every use and a reused one
// revokes the whole session, so refreshing is single-flight: concurrent callers share
// one request.

const BASE = '/api/v1';
const REFRESH_KEY = 'goim.refresh_token';
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 60_000;

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

let session = null; // { userId, sessionId, accessToken, refreshToken, expiresAt }
let refreshTimer = null;
let refreshing = null;
const listeners = new Set();

/** Calls `fn(signedIn)` whenever the session starts or ends. */
export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function currentUserId() {
  return session ? session.userId : null;
}

function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Firefox\//.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge' : /Chrom/.test(ua) ? 'Chromium' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  return `${browser} (web client)`;
}

export async function register(username, password, nickname) {
  const body = { username, password, device_name: deviceName() };
  if (nickname) body.nickname = nickname;
  const answer = await send('POST', '/auth/register', body, null);
  adopt(answer);
  return answer.user;
}

export async function login(username, password) {
  adopt(await send('POST', '/auth/login', { username, password, device_name: deviceName() }, null));
}

/** Resumes the session of this tab after a reload; false when there is none. */
export async function restore() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (!token) return false;
  try {
    adopt(await send('POST', '/auth/refresh', { refresh_token: token }, null));
    return true;
  } catch (err) {
    if (err.status === 401) sessionStorage.removeItem(REFRESH_KEY);
    if (err.status === 401 || err.status === 400) return false;
    throw err;
  }
}

export async function logout() {
  try {
    if (session) await api('POST', '/auth/logout');
  } catch {
    // Signing out locally is what matters; the session expires on its own.
  }
  end();
}

/** Forgets the session locally (after a revocation or a logout). */
export function end() {
  const wasSignedIn = session !== null;
  session = null;
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(REFRESH_KEY);
  if (wasSignedIn) listeners.forEach((fn) => fn(false));
}

function adopt(tokens) {
  const wasSignedIn = session !== null;
  session = {
    userId: tokens.user_id,
    sessionId: tokens.session_id,
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    expiresAt: Date.now() + tokens.expires_in * 1000,
  };
  sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
  clearTimeout(refreshTimer);
  const lifetime = tokens.expires_in * 1000;
  const delay = Math.max(5_000, Math.min(lifetime - REFRESH_MARGIN_MS, lifetime * 0.8));
  refreshTimer = setTimeout(() => refresh().catch(() => {}), delay);
  if (!wasSignedIn) listeners.forEach((fn) => fn(true));
}

/** Exchanges the refresh token for new tokens; one request at a time. */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      if (!session) throw new ApiError(401, 'signed_out', 'You are signed out.');
      try {
        adopt(await send('POST', '/auth/refresh', { refresh_token: session.refreshToken }, null));
      } catch (err) {
        if (err.status === 401) end();
        throw err;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** A valid access token, refreshed first if it is about to expire. */
export async function accessToken() {
  if (!session) throw new ApiError(401, 'signed_out', 'You are signed out.');
  if (session.expiresAt - Date.now() < 10_000) await refresh();
  return session.accessToken;
}

/**
 * An authenticated call to `/api/v1<path>`; resolves to the JSON body (or null), throws
 * ApiError with the server's code and message.
 */
export async function api(method, path, body) {
  const token = await accessToken();
  try {
    return await send(method, path, body, token);
  } catch (err) {
    if (err.status === 401 && err.code === 'token_expired') {
      await refresh();
      return send(method, path, body, session.accessToken);
    }
    if (err.status === 401) end();
    throw err;
  }
}

async function send(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection.');
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || `The server answered ${response.status}.`,
      error.field,
    );
  }
  return data;
}

/** `?a=1&b=2` from an object, skipping null/undefined. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') search.set(key, value);
  const text = search.toString();
  return text ? `?${text}` : '';
}

/**
 * Uploads `file` (a File or Blob) as `name` to POST /uploads with the raw bytes as the
 * body; `onProgress(fraction)` follows the upload. Resolves to the upload's facts,
 * throws ApiError. XMLHttpRequest, since fetch() does not report upload progress.
 */
export async function upload(file, name, onProgress) {
  const attempt = (token) =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `${BASE}/uploads${query({ name })}`);
      xhr.setRequestHeader('Authorization', `Bearer ${token}`);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.responseType = 'json';
      if (onProgress) xhr.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
      xhr.onload = () => {
        const data = xhr.response;
        if (xhr.status >= 200 && xhr.status < 300) return resolve(data);
        const error = (data && data.error) || {};
        reject(new ApiError(xhr.status, error.code || `http_${xhr.status}`, error.message || `The server answered ${xhr.status}.`, error.field));
      };
      xhr.onerror = () => reject(new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection.'));
      xhr.ontimeout = xhr.onerror;
      xhr.send(file);
    });
  try {
    return await attempt(await accessToken());
  } catch (err) {
    if (err.status === 401 && err.code === 'token_expired') {
      await refresh();
      return attempt(session.accessToken);
    }
    if (err.status === 401) end();
    throw err;
  }
}

/** GET `/api/v1<path>` with the token, as a Blob (an upload's bytes or thumbnail). */
export async function fetchBlob(path) {
  const get = async (token) => {
    let response;
    try {
      response = await fetch(BASE + path, { headers: { Authorization: `Bearer ${token}` }, credentials: 'omit', cache: 'no-store' });
    } catch {
      throw new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection.');
    }
    if (response.ok) return response.blob();
    let error = {};
    try {
      error = (await response.json()).error || {};
    } catch {
      // Not JSON: the status says enough.
    }
    throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || `The server answered ${response.status}.`);
  };
  try {
    return await get(await accessToken());
  } catch (err) {
    if (err.status === 401 && err.code === 'token_expired') {
      await refresh();
      return get(session.accessToken);
    }
    throw err;
  }
}
