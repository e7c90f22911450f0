// The per-token view: each token's text (always as text, never as markup) with one small bar per monitored vector
// under it, up for above the neutral baseline, down for below, in that vector's colour.

const HALF = 13;  // px: half the bars' height

function visible(text) {
  // whitespace a reader can see: a newline as ⏎, a tab as →; spaces stay (the token text is shown with white-space: pre)
  return text.replace(/\n/g, '⏎').replace(/\t/g, '→') || '∅';
}

export class TokenView {
  // monitors: [{id, label, color}]
  constructor(container, monitors) {
    this.container = container;
    this.monitors = monitors;
    this.tokens = [];
    this.values = [];
    this.segments = [];
    this.cells = [];
    this.scale = 0;
    container.replaceChildren();
  }

  add(i, text, segment = 'response') {
    const cell = document.createElement('span');
    cell.className = 'tok ' + segment;
    const label = document.createElement('span');
    label.className = 'tok-text';
    label.textContent = visible(text);
    const bars = document.createElement('span');
    bars.className = 'tok-bars';
    for (const m of this.monitors) {
      const bar = document.createElement('span');
      bar.className = 'bar';
      const fill = document.createElement('i');
      fill.style.background = m.color;
      bar.appendChild(fill);
      bars.appendChild(bar);
    }
    cell.append(label, bars);
    this.tokens[i] = text;
    this.segments[i] = segment;
    this.cells[i] = cell;
    this.container.appendChild(cell);
    this.describe(i);
  }

  setValues(i, values) {
    this.values[i] = values;
    let peak = this.scale;
    for (const m of this.monitors) if (typeof values[m.id] === 'number') peak = Math.max(peak, Math.abs(values[m.id]));
    if (peak > this.scale) {
      this.scale = peak;
      this.values.forEach((_, j) => this.drawBars(j));
    } else {
      this.drawBars(i);
    }
    this.describe(i);
  }

  drawBars(i) {
    const cell = this.cells[i];
    const values = this.values[i];
    if (!cell || !values) return;
    const fills = cell.querySelectorAll('.bar i');
    this.monitors.forEach((m, k) => {
      const v = values[m.id];
      const h = typeof v === 'number' && this.scale > 0 ? Math.max(1, (Math.abs(v) / this.scale) * HALF) : 0;
      fills[k].style.height = h + 'px';
      fills[k].style.top = (v >= 0 ? HALF - h : HALF) + 'px';
    });
  }

  describe(i) {
    const lines = [`${i}: ${JSON.stringify(this.tokens[i])}`];
    const values = this.values[i] || {};
    for (const m of this.monitors) {
      const v = values[m.id];
      lines.push(`${m.label}: ${typeof v === 'number' ? (v >= 0 ? '+' : '') + v.toFixed(3) : '…'}`);
    }
    this.cells[i].title = lines.join('\n');  // a title is text: nothing in a token can become markup
  }

  // the series a chart draws: one per monitor
  series() {
    return this.monitors.map((m) => ({
      id: m.id, label: m.label, color: m.color,
      values: this.tokens.map((_, i) => (this.values[i] && typeof this.values[i][m.id] === 'number' ? this.values[i][m.id] : null)),
    }));
  }
}
