// Trait Dynamics: one line per monitored vector over the tokens, drawn as SVG by hand, around the neutral baseline (0).

const SVG = 'http://www.w3.org/2000/svg';

function node(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

function niceStep(range) {
  const raw = range / 4;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const unit = raw / power;
  return (unit >= 5 ? 5 : unit >= 2 ? 2 : 1) * power;
}

// series: [{id, label, color, values: [number|null per token]}]; tokens: [string]; opts.segments marks prompt tokens;
// opts.peak: the least |value| the axis covers.
export function drawChart(container, series, tokens, opts = {}) {
  container.replaceChildren();
  const n = tokens.length;
  if (!n || !series.length) {
    const p = document.createElement('p');
    p.className = 'meta';
    p.textContent = opts.empty || 'No tokens yet.';
    container.appendChild(p);
    return;
  }
  const W = 720, H = 220, left = 46, right = 10, top = 10, bottom = 34;
  let peak = 0;
  for (const s of series) for (const v of s.values) if (v !== null && v !== undefined) peak = Math.max(peak, Math.abs(v));
  peak = Math.max(peak, opts.peak || 0);  // charts shown side by side share one scale
  peak = peak > 0 ? peak * 1.1 : 1;
  const step = niceStep(2 * peak);
  const yMax = Math.ceil(peak / step) * step;
  const x = (i) => left + (n === 1 ? (W - left - right) / 2 : (i * (W - left - right)) / (n - 1));
  const y = (v) => top + ((yMax - v) * (H - top - bottom)) / (2 * yMax);
  const svg = node('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  node('title', {}, svg).textContent = opts.title || 'Trait Dynamics: projection per token, 0 = neutral baseline';
  for (let v = -yMax; v <= yMax + 1e-9; v += step) {
    node('line', { x1: left - 4, x2: left, y1: y(v), y2: y(v), class: 'axis' }, svg);
    const digits = Math.max(0, -Math.floor(Math.log10(step)));
    const label = Math.abs(v) < step / 2 ? '0' : (v > 0 ? '+' : '') + v.toFixed(digits);
    node('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, svg).textContent = label;
  }
  node('line', { x1: left, x2: left, y1: top, y2: H - bottom, class: 'axis' }, svg);
  node('line', { x1: left, x2: W - right, y1: y(0), y2: y(0), class: 'zero' }, svg);
  node('text', { x: W - right, y: y(0) - 4, 'text-anchor': 'end' }, svg).textContent = 'neutral baseline';
  if (opts.segments) {  // shade the prompt's tokens
    const last = opts.segments.lastIndexOf('prompt');
    if (last >= 0) node('rect', { x: left, y: top, width: Math.max(0, x(last) - left), height: H - top - bottom, fill: 'rgba(0,0,0,.04)' }, svg);
  }
  const every = Math.max(1, Math.ceil(n / 12));
  for (let i = 0; i < n; i += every) {
    node('text', { x: x(i), y: H - bottom + 14, 'text-anchor': 'middle' }, svg).textContent = String(i);
  }
  node('text', { x: (left + W - right) / 2, y: H - 4, 'text-anchor': 'middle' }, svg).textContent = opts.xlabel || 'token';
  for (const s of series) {
    const points = [];
    s.values.forEach((v, i) => { if (v !== null && v !== undefined) points.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`); });
    if (points.length === 1) node('circle', { cx: points[0].split(',')[0], cy: points[0].split(',')[1], r: 2.5, fill: s.color }, svg);
    const line = node('polyline', { points: points.join(' '), stroke: s.color }, svg);
    line.dataset.vector = s.id;
  }
  // one transparent column per token: hovering shows the token and every value
  const width = n === 1 ? W - left - right : (W - left - right) / (n - 1);
  for (let i = 0; i < n; i++) {
    const hit = node('rect', { x: x(i) - width / 2, y: top, width, height: H - top - bottom, fill: 'transparent', class: 'hit' }, svg);
    const lines = [`${i}: ${JSON.stringify(tokens[i])}`];
    for (const s of series) {
      const v = s.values[i];
      lines.push(`${s.label}: ${v === null || v === undefined ? 'n/a' : (v >= 0 ? '+' : '') + v.toFixed(3)}`);
    }
    node('title', {}, hit).textContent = lines.join('\n');
  }
  container.appendChild(svg);
  const legend = document.createElement('div');
  legend.className = 'row meta';
  for (const s of series) {
    const item = document.createElement('span');
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = s.color;
    item.append(sw, document.createTextNode(' ' + s.label));
    legend.appendChild(item);
  }
  container.appendChild(legend);
}

// the largest |value| any of these series holds
export function peakOf(series) {
  let peak = 0;
  for (const s of series) for (const v of s.values) if (typeof v === 'number') peak = Math.max(peak, Math.abs(v));
  return peak;
}
