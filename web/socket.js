// The real-time connection (docs/protocol.md, subprotocol `goim.v1`): a one-time ticket
// from POST /api/v1/ws/ticket, then one WebSocket; requests carry an id and get exactly
// one reply; events are handed to the listener. The socket reconnects by itself with
// backoff, and the owner catches up with `sync` in `onOpen`.

import { ApiError, api, refresh } from './api.js';

const PROTOCOL = 'goim.v1';
const REQUEST_TIMEOUT_MS = 10_000;
/** A client-side liveness check: browsers hide the server's pings. */
const PING_INTERVAL_MS = 25_000;
const MAX_BACKOFF_MS = 30_000;

export class Realtime {
  /**
   * @param {object} hooks
   *   onEvent(event), onOpen() (awaited before the state turns `online`),
   *   onState(state, detail): state is one of connecting, online, offline, unavailable, stopped.
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.ws = null;
    this.state = 'stopped';
    this.nextId = 1;
    this.pending = new Map();
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.running = false;
    this.fetchingTicket = false;
    /** Set by the test hook: stay disconnected until resumed. */
    this.held = false;
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.ws && this.ws.close(4000, 'browser offline');
  }

  start() {
    if (this.running) return;
    this.running = true;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.connect();
  }

  stop() {
    this.running = false;
    this.held = false;
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close(1000, 'signed out');
    this.ws = null;
    this.failAll('stopped');
    this.setState('stopped');
  }

  /** Requests can be sent (also while the catch-up after a reconnect runs). */
  get isOpen() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  setState(state, detail = {}) {
    this.state = state;
    this.hooks.onState && this.hooks.onState(state, detail);
  }

  async connect() {
    clearTimeout(this.retryTimer);
    if (!this.running || this.held || this.fetchingTicket) return;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.setState('connecting');
    let ticket;
    this.fetchingTicket = true;
    try {
      ticket = (await api('POST', '/ws/ticket')).ticket;
    } catch (err) {
      this.fetchingTicket = false;
      if (err.status === 401) return; // signed out: the app tears us down
      // 404: this server has no gateway; keep the app usable over REST.
      const unavailable = err.status === 404 || err.status === 405;
      this.scheduleReconnect(unavailable ? 'unavailable' : 'offline', unavailable ? MAX_BACKOFF_MS : undefined);
      return;
    }
    this.fetchingTicket = false;
    if (!this.running || this.held) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/api/v1/ws?ticket=${encodeURIComponent(ticket)}`, PROTOCOL);
    this.ws = ws;
    ws.onopen = async () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.heartbeat(ws), PING_INTERVAL_MS);
      try {
        this.setState('syncing');
        await this.hooks.onOpen();
        if (this.ws === ws) this.setState('online');
      } catch (err) {
        console.warn('catch-up failed', err);
        if (this.ws === ws) ws.close(4000, 'catch-up failed');
      }
    };
    ws.onmessage = (message) => this.receive(message.data);
    ws.onclose = (close) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      this.failAll('disconnected');
      if (!this.running) return;
      if (close.code === 4001) {
        // The session was revoked or expired: a refresh tells which.
        refresh().then(() => this.scheduleReconnect('offline'), () => {});
        return;
      }
      const slow = close.code === 4008 || close.code === 1008;
      this.scheduleReconnect('offline', slow ? MAX_BACKOFF_MS : undefined, close.code);
    };
  }

  scheduleReconnect(state, delayMs, code) {
    if (!this.running) return;
    this.attempt += 1;
    const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(this.attempt, 6));
    const delay = delayMs ?? Math.round(backoff * (0.5 + Math.random() / 2));
    this.setState(state, { retryAt: Date.now() + delay, code, held: this.held });
    clearTimeout(this.retryTimer);
    if (!this.held) this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Reconnects at once (the browser is back online, or the user asked). */
  reconnectNow() {
    if (!this.running || this.held) return;
    this.attempt = 0;
    if (!this.ws) this.connect();
  }

  heartbeat(ws) {
    if (this.ws !== ws) return;
    this.request('ping', {}, 10_000).catch(() => {
      // No answer: the connection is dead even if the browser has not noticed.
      if (this.ws === ws) ws.close(4000, 'no pong');
    });
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      console.warn('unparseable frame');
      return;
    }
    if (frame.type === 'reply') {
      const waiter = this.pending.get(frame.id);
      if (!waiter) return;
      this.pending.delete(frame.id);
      clearTimeout(waiter.timer);
      if (frame.ok) waiter.resolve(frame.data);
      else {
        const error = frame.error || {};
        waiter.reject(new ApiError(0, error.code || 'error', error.message || 'request failed', error.field));
      }
    } else if (frame.type === 'event' && frame.event) {
      try {
        this.hooks.onEvent(frame.event);
      } catch (err) {
        console.error('event handler failed', err);
      }
    }
  }

  /** Sends a request; resolves to the reply's data, rejects with ApiError. */
  request(type, fields = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ApiError(0, 'disconnected', 'Not connected.'));
    }
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError(0, 'timeout', 'The server did not answer in time.'));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...fields, id, type }));
    });
  }

  failAll(code) {
    for (const waiter of this.pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new ApiError(0, code, 'The connection was lost.'));
    }
    this.pending.clear();
  }

  /** Test hook: drop the socket and stay disconnected until `resume`. */
  hold() {
    this.held = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(4000, 'held');
    else this.setState('offline', { held: true });
  }

  resume() {
    this.held = false;
    this.attempt = 0;
    this.connect();
  }
}
