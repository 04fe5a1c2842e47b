/**
 * Node.js helpers: a [`WebSocketFactory`] on the `ws` package, for Node versions without a
 * global `WebSocket` (Node 20). Browsers do not need this entry point.
 */

import WebSocket from 'ws';
import type { WebSocketFactory } from './ws.js';

/** Opens WebSockets with the `ws` package (no per-message compression: batches are hex). */
export const nodeWebSocket: WebSocketFactory = (url) => new WebSocket(url, { perMessageDeflate: false });
