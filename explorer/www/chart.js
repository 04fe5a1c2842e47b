// A small line chart on a canvas: no library. `points` are [x, y] pairs (x ascending).
export function drawChart(canvas, points, { color = '#1f6feb', unit = '' } = {}) {
  const ctx = canvas.getContext('2d');
  const dpr = globalThis.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const fg = getComputedStyle(canvas).color || '#888';
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = fg;
  if (points.length < 2) {
    ctx.fillText('waiting for blocks…', 8, h / 2);
    return;
  }
  const left = 44, right = 8, top = 8, bottom = 18;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const yMax = Math.max(...ys) * 1.1 || 1;
  const X = (x) => left + ((x - x0) / (x1 - x0 || 1)) * (w - left - right);
  const Y = (y) => top + (1 - y / yMax) * (h - top - bottom);
  ctx.strokeStyle = 'rgba(128,128,128,.4)';
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (const f of [0, 0.5, 1]) {
    const y = Y(yMax * f);
    ctx.moveTo(left, y);
    ctx.lineTo(w - right, y);
    ctx.fillText(fmt(yMax * f) + unit, 2, y + 4);
  }
  ctx.stroke();
  ctx.fillText(String(x0), left, h - 4);
  const last = String(x1);
  ctx.fillText(last, w - right - ctx.measureText(last).width, h - 4);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
  ctx.stroke();
}

function fmt(v) {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}
