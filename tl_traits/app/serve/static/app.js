// The dashboard's entry point: reads /api/info, builds the trait sidebar and the tabs, and hands each view the
// shared `ui` (which vectors are watched, at which layer, how errors are shown).

import { getJSON } from './api.js';
import { setupChat, setupSteer } from './panels.js';
import { setupBrowse } from './browse.js';

const PALETTE = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const $ = (id) => document.getElementById(id);

function showError(message) {
  $('error-text').textContent = message;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
}

// A watched vector keeps its colour while it is watched; at most `max_vectors` are, so their colours all differ.
function buildSidebar(info, ui) {
  const list = $('trait-list');
  const chosen = new Set(info.defaults.chat_vectors || []);
  const limit = info.limits.max_vectors;
  const boxes = [];
  const swatches = {};
  const paint = () => {
    const used = new Set(boxes.filter((b) => b.checked && ui.colors[b.value]).map((b) => ui.colors[b.value]));
    for (const b of boxes) {
      if (!b.checked) delete ui.colors[b.value];
      else if (!ui.colors[b.value]) {
        ui.colors[b.value] = PALETTE.find((c) => !used.has(c)) || PALETTE[0];
        used.add(ui.colors[b.value]);
      }
      swatches[b.value].style.background = ui.colors[b.value] || 'transparent';
    }
    const n = boxes.filter((b) => b.checked).length;
    boxes.forEach((b) => { b.disabled = !b.checked && n >= limit; });
  };
  for (const v of info.vectors) {
    const row = document.createElement('label');
    row.className = 'trait';
    row.title = `${v.id}: ${v.method} vector of ${v.trait}, from ${v.file}; best detection layer ${v.best_layer}`;
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.value = v.id;
    box.checked = chosen.has(v.id);
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatches[v.id] = swatch;
    row.append(box, swatch, document.createTextNode(v.label));
    list.appendChild(row);
    boxes.push(box);
    box.addEventListener('change', paint);
  }
  paint();
  const layers = [...new Set(info.vectors.flatMap((v) => v.layers))].sort((a, b) => a - b);
  const select = $('monitor-layer');
  for (const [value, text] of [['best', "each vector's best layer"], ...layers.map((l) => [String(l), `layer ${l}`])]) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    select.appendChild(o);
  }
  $('baseline-note').textContent = 'Projections: ' + info.baseline + '.';
  ui.watched = () => boxes.filter((b) => b.checked).map((b) => {
    const v = info.vectors.find((x) => x.id === b.value);
    return { id: v.id, label: v.label, color: ui.colors[v.id] };
  });
  ui.watchFields = () => {
    const layer = select.value === 'best' ? 'best' : Number(select.value);
    return { vectors: ui.watched().map((m) => m.id), layer };
  };
}

function buildTabs() {
  const buttons = [...document.querySelectorAll('nav button[data-tab]')];
  for (const button of buttons) {
    button.addEventListener('click', () => {
      for (const b of buttons) {
        const on = b === button;
        b.setAttribute('aria-selected', String(on));
        $('tab-' + b.dataset.tab).hidden = !on;
      }
    });
  }
}

async function pollStatus() {
  try {
    const s = await getJSON('/api/status');
    $('queue').textContent = s.busy ? `model busy${s.queued ? `, ${s.queued} waiting` : ''}` : 'model idle';
  } catch (_) {
    $('queue').textContent = 'server unreachable';
  }
}

async function main() {
  $('error-close').addEventListener('click', clearError);
  let info;
  try {
    info = await getJSON('/api/info');
  } catch (err) {
    showError('Could not load the dashboard: ' + err.message);
    return;
  }
  const m = info.model;
  $('model-name').textContent = `${m.name} (${m.kind}, ${m.n_layers} layers, d_model ${m.d_model}) · ${info.sources.join(', ')}`;
  const ui = { info, colors: {}, showError, clearError, refresh: pollStatus };
  buildSidebar(info, ui);
  buildTabs();
  setupChat(ui);
  setupSteer(ui);
  setupBrowse(ui);
  document.body.dataset.ready = 'true';
  pollStatus();
  setInterval(pollStatus, 3000);
}

main();
