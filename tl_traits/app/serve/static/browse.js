// The prompt-set browser: a set, a text search, a filter per label the set carries, pages; every prompt and response
// shown in full; "project" reads one example token by token onto the watched traits.

import { getJSON, postJSON } from './api.js';
import { drawChart } from './chart.js';
import { TokenView } from './tokens.js';

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(v) {
  return typeof v === 'number' ? (Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(2)) : 'n/a';
}

export function setupBrowse(ui) {
  const { info } = ui;
  const select = $('set-select');
  const search = $('set-search');
  const size = $('set-size');
  const state = { page: 1, pages: 1, labels: {} };
  let timer = null;
  let chosenCard = null;

  for (const s of info.prompt_sets) {
    const o = el('option', '', `${s.name} (${s.size})`);
    o.value = s.id;
    select.appendChild(o);
  }
  const run = info.prompt_sets.find((s) => s.source === 'run');
  if (run) select.value = run.id;

  function buildFilters() {
    const set = info.prompt_sets.find((s) => s.id === select.value);
    $('set-description').textContent = set.description;
    const box = $('set-filters');
    box.replaceChildren();
    state.labels = {};
    for (const [key, counts] of Object.entries(set.labels)) {
      const label = el('label', '', key + ' ');
      const pick = el('select');
      pick.dataset.label = key;
      const all = el('option', '', 'all');
      all.value = 'all';
      pick.appendChild(all);
      for (const [value, n] of Object.entries(counts)) {
        const o = el('option', '', `${value} (${n})`);
        o.value = value;
        pick.appendChild(o);
      }
      pick.addEventListener('change', () => { state.labels[key] = pick.value; state.page = 1; load(); });
      label.appendChild(pick);
      box.appendChild(label);
    }
  }

  function card(row) {
    const c = el('div', 'example');
    c.dataset.index = row.index;
    const head = el('div', 'row');
    head.appendChild(el('b', '', row.id));
    for (const [k, v] of Object.entries(row.labels)) head.appendChild(el('span', 'badge', `${k}: ${v}`));
    for (const [k, v] of Object.entries(row.extra || {})) head.appendChild(el('span', 'meta', `${k} ${fmt(v)}`));
    const button = el('button', '', 'project');
    button.type = 'button';
    button.title = 'every token of this prompt and response, projected on the watched traits';
    button.addEventListener('click', () => project(row, c));
    head.appendChild(button);
    c.appendChild(head);
    if (row.note) c.appendChild(el('div', 'meta', row.note));
    c.appendChild(el('div', 'label-name', 'prompt'));
    c.appendChild(el('pre', 'prompt', row.prompt));
    c.appendChild(el('div', 'label-name', 'response'));
    c.appendChild(el('pre', 'response', row.response === null ? '(this set has no responses: "project" generates the model\'s greedy answer)' : row.response));
    return c;
  }

  async function load() {
    const params = new URLSearchParams({ page: String(state.page), size: size.value, q: search.value });
    for (const [k, v] of Object.entries(state.labels)) if (v && v !== 'all') params.set('label.' + k, v);
    try {
      const data = await getJSON(`/api/prompt-sets/${encodeURIComponent(select.value)}?${params}`);
      state.page = data.page;
      state.pages = data.pages;
      $('set-page').textContent = `page ${data.page} of ${data.pages}`;
      $('set-count').textContent = `${data.matched} of ${data.total} prompts`;
      $('set-prev').disabled = data.page <= 1;
      $('set-next').disabled = data.page >= data.pages;
      $('set-rows').replaceChildren(...data.rows.map(card));
    } catch (err) {
      ui.showError(err.message);
    }
  }

  async function project(row, c) {
    ui.clearError();
    if (chosenCard) chosenCard.classList.remove('chosen');
    chosenCard = c;
    c.classList.add('chosen');
    const box = $('example');
    const monitors = ui.watched();
    $('example-title').textContent = `Per-token projections: ${row.id}`;
    $('example-note').textContent = row.response === null ? 'generating the answer, then projecting…' : 'projecting…';
    const view = new TokenView(box.querySelector('.tokens'), monitors);
    drawChart(box.querySelector('.chart'), [], [], { empty: 'Waiting for the model.' });
    try {
      const data = await postJSON(`/api/prompt-sets/${encodeURIComponent(select.value)}/projections`,
        { index: row.index, max_new_tokens: info.limits.default_new_tokens, ...ui.watchFields() });
      data.tokens.forEach((t, i) => {
        view.add(i, t, data.segments[i]);
        view.setValues(i, Object.fromEntries(Object.entries(data.values).map(([id, vs]) => [id, vs[i]])));
      });
      $('example-note').textContent = `${data.monitors.map((m) => `${m.id} @ layer ${m.layer}`).join(', ')}; grey: prompt tokens`
        + (data.generated ? '; the response is the model\'s greedy answer, generated now' : '') + '.';
      drawChart(box.querySelector('.chart'), view.series(), view.tokens, { segments: data.segments });
      box.dataset.done = 'true';
    } catch (err) {
      $('example-note').textContent = '';
      ui.showError(err.message);
    }
  }

  select.addEventListener('change', () => { state.page = 1; search.value = ''; buildFilters(); load(); });
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { state.page = 1; load(); }, 250); });
  size.addEventListener('change', () => { state.page = 1; load(); });
  $('set-prev').addEventListener('click', () => { state.page = Math.max(1, state.page - 1); load(); });
  $('set-next').addEventListener('click', () => { state.page = Math.min(state.pages, state.page + 1); load(); });
  buildFilters();
  load();
}
