// The chat view (a conversation, each answer streamed token by token with its traits) and the steering view
// (the unsteered and the steered answer side by side, each judged).

import { streamEvents } from './api.js';
import { drawChart, peakOf } from './chart.js';
import { TokenView } from './tokens.js';

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// redraws a chart at most once per frame while tokens stream in
function chartPainter(container, view, opts) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; drawChart(container, view().series(), view().tokens, opts); });
  };
}

function speed(done, firstTokenAt, started) {
  const parts = [`${done.tokens} tokens`, done.stopped === 'eos' ? 'ended by the model' : 'cut at the token limit'];
  if (done.cached) parts.push('reused');
  else if (firstTokenAt) parts.push(`first token after ${((firstTokenAt - started) / 1000).toFixed(2)} s`, `${done.seconds.toFixed(2)} s`);
  return parts.join(' · ');
}

export function setupChat(ui) {
  const { info } = ui;
  const input = $('chat-input');
  const tokens = $('chat-tokens');
  tokens.value = info.limits.default_new_tokens;
  tokens.max = info.limits.max_new_tokens;
  const history = [];
  let controller = null;
  let chosen = null;
  const chart = $('chat-chart');
  drawChart(chart, [], [], { empty: 'Send a message: each watched trait is drawn here over the answer\'s tokens.' });

  const countChars = () => {
    const n = history.reduce((a, m) => a + m.content.length, 0) + input.value.length;
    $('chat-chars').textContent = `${n} / ${info.limits.max_prompt_chars} characters`;
  };
  input.addEventListener('input', countChars);
  countChars();

  function choose(msg) {
    if (chosen) chosen.el.classList.remove('chosen');
    chosen = msg;
    msg.el.classList.add('chosen');
    $('chat-chart-label').textContent = msg.label;
    drawChart(chart, msg.view.series(), msg.view.tokens, { empty: 'No tokens yet.' });
  }

  async function send(text) {
    ui.clearError();
    const messages = [...history, { role: 'user', content: text }];
    const fields = ui.watchFields();
    const monitors = ui.watched();
    $('chat-log').appendChild(el('div', 'msg user', text));
    const box = el('div', 'msg assistant');
    const who = el('div', 'who', 'assistant');
    const tokenBox = el('div', 'tokens');
    box.append(who, tokenBox);
    $('chat-log').appendChild(box);
    const msg = { el: box, view: new TokenView(tokenBox, monitors), label: '' };
    box.addEventListener('click', () => choose(msg));
    choose(msg);
    const paint = chartPainter(chart, () => msg.view, {});
    controller = new AbortController();
    $('chat-send').disabled = true;
    $('chat-stop').disabled = false;
    const started = performance.now();
    let first = 0;
    try {
      for await (const ev of streamEvents('/api/chat', { messages, max_new_tokens: Number(tokens.value), ...fields }, controller.signal)) {
        if (ev.type === 'queued' && ev.ahead) who.textContent = `assistant · waiting for ${ev.ahead} request(s)`;
        else if (ev.type === 'start') {
          msg.label = ev.monitors.map((m) => `${m.id} @ layer ${m.layer}`).join(', ');
          who.textContent = 'assistant · ' + msg.label;
          if (chosen === msg) $('chat-chart-label').textContent = msg.label;
        } else if (ev.type === 'token') {
          if (!first) first = performance.now();
          msg.view.add(ev.i, ev.text);
          if (chosen === msg) paint();
        } else if (ev.type === 'values') {
          msg.view.setValues(ev.i, ev.values);
          if (chosen === msg) paint();
        } else if (ev.type === 'done') {
          box.dataset.text = ev.text;
          box.dataset.done = 'true';
          who.textContent = 'assistant · ' + speed(ev, first, started);
          history.push({ role: 'user', content: text }, { role: 'assistant', content: ev.text });
        }
      }
    } catch (err) {
      if (err.name === 'AbortError') who.textContent += ' · stopped';
      else ui.showError(err.message);
    } finally {
      controller = null;
      ui.refresh();
      $('chat-send').disabled = false;
      $('chat-stop').disabled = true;
      countChars();
    }
  }

  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    input.value = '';
    send(text);
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('chat-form').requestSubmit(); }
  });
  $('chat-stop').addEventListener('click', () => controller && controller.abort());
  $('chat-reset').addEventListener('click', () => {
    if (controller) controller.abort();
    history.length = 0;
    chosen = null;
    $('chat-log').replaceChildren();
    $('chat-chart-label').textContent = '';
    drawChart(chart, [], [], { empty: 'A new chat: send a message.' });
    countChars();
  });
}

function scoreTable(table, scores) {
  table.replaceChildren();
  if (typeof scores === 'string') {
    const row = table.insertRow();
    row.insertCell().textContent = scores;
    return;
  }
  for (const [key, label] of [['trait', 'trait'], ['coherence', 'coherence'], ['relevance', 'relevance'], ['score', 'steering score']]) {
    const row = table.insertRow();
    row.insertCell().textContent = label;
    const v = scores[key];
    row.insertCell().textContent = v === null || v === undefined ? 'n/a' : v.toFixed(0);
  }
}

/** A strength typed or set: a number in [0, max]. */
export function clampStrength(value, max) {
  return Math.min(Math.max(0, Number(value) || 0), max);
}

/** A run's chosen strength as the box shows it: to the 3 figures the report gives it (its search never resolves
 * finer), its size only (the direction has its own control). */
export function presetStrength(strength) {
  return Number(Math.abs(strength || 0).toPrecision(3));
}

export function setupSteer(ui) {
  const { info } = ui;
  const vector = $('steer-vector');
  const layers = $('steer-layers');
  const slider = $('steer-strength');
  const number = $('steer-strength-value');
  const tokens = $('steer-tokens');
  const preset = info.defaults.steering || {};
  tokens.value = info.limits.default_new_tokens;
  tokens.max = info.limits.max_new_tokens;
  for (const v of info.vectors) {
    const o = el('option', '', v.label);
    o.value = v.id;
    vector.appendChild(o);
  }
  vector.value = preset.vector || info.vectors[0].id;
  const setLayers = () => {
    const v = info.vectors.find((x) => x.id === vector.value);
    layers.value = (preset.vector === v.id && preset.layers ? preset.layers : [v.steering_layer ?? v.best_layer]).join(',');
    layers.title = 'layers this vector has: ' + v.layers.join(', ');
  };
  vector.addEventListener('change', setLayers);
  setLayers();
  const setStrength = (value) => {
    const s = clampStrength(value, info.limits.max_strength);
    if (s > Number(slider.max)) slider.max = String(Math.min(info.limits.max_strength, Math.ceil(s * 2)));
    slider.value = String(s);
    number.value = String(s);
  };
  setStrength(presetStrength(preset.strength));
  number.max = String(info.limits.max_strength);

  const columns = { unsteered: $('steer-unsteered'), steered: $('steer-steered') };
  const views = {};
  let controller = null;

  function resetColumn(which, monitors) {
    const col = columns[which];
    col.querySelector('.answer-text').textContent = '';
    delete col.dataset.done;
    delete col.dataset.text;
    delete col.dataset.scored;
    views[which] = new TokenView(col.querySelector('.tokens'), monitors);
    drawChart(col.querySelector('.chart'), [], [], { empty: 'Waiting for tokens.' });
  }

  async function run() {
    const text = $('steer-input').value.trim();
    if (!text) { ui.showError('Type a prompt to steer.'); return; }
    if (controller) controller.abort();  // the server stops the answer it was streaming at its next token
    ui.clearError();
    const mine = new AbortController();
    controller = mine;
    const monitors = ui.watched();
    const payload = {
      message: text, vector: vector.value, layers: layers.value.split(',').map((x) => x.trim()).filter(Boolean).map(Number),
      strength: Number(number.value), direction: Number($('steer-direction').value), max_new_tokens: Number(tokens.value),
      ...ui.watchFields(),
    };
    for (const which of Object.keys(columns)) {
      resetColumn(which, monitors);
      scoreTable(columns[which].querySelector('.scores'), 'waiting');
    }
    let pending = false;
    const paint = () => {  // both charts at once, on one scale, so the two answers compare at a glance
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        const peak = Math.max(...Object.keys(columns).map((w) => peakOf(views[w].series())));
        for (const w of Object.keys(columns)) drawChart(columns[w].querySelector('.chart'), views[w].series(), views[w].tokens, { peak });
      });
    };
    try {
      for await (const ev of streamEvents('/api/steer', payload, mine.signal)) {
        const col = columns[ev.which];
        if (ev.type === 'setting') {
          $('steer-setting').textContent = `${ev.vector}: ${ev.description}`;
          columns.steered.querySelector('h3').textContent = `Steered (strength ${Number(ev.strength.toPrecision(3))}, layer${ev.layers.length > 1 ? 's' : ''} ${ev.layers.join(', ')})`;
        } else if (ev.type === 'token') {
          views[ev.which].add(ev.i, ev.text);
          col.querySelector('.answer-text').textContent += ev.text;
          paint();
        } else if (ev.type === 'values') {
          views[ev.which].setValues(ev.i, ev.values);
          paint();
        } else if (ev.type === 'done') {
          col.querySelector('.answer-text').textContent = ev.text;
          col.dataset.text = ev.text;
          col.dataset.done = 'true';
          scoreTable(col.querySelector('.scores'), speed(ev, 0, 0));
        } else if (ev.type === 'judging') {
          for (const w of Object.keys(columns)) scoreTable(columns[w].querySelector('.scores'), 'judging…');
        } else if (ev.type === 'scores') {
          for (const w of Object.keys(columns)) {
            scoreTable(columns[w].querySelector('.scores'), ev.unavailable ? ev.unavailable : ev.scores[w]);
            columns[w].dataset.scored = 'true';
          }
        }
      }
    } catch (err) {
      if (err.name !== 'AbortError') ui.showError(err.message);
    } finally {
      if (controller === mine) controller = null;
      ui.refresh();
    }
  }

  $('steer-form').addEventListener('submit', (e) => { e.preventDefault(); run(); });
  slider.addEventListener('input', () => { number.value = slider.value; });
  slider.addEventListener('change', () => { if ($('steer-input').value.trim()) run(); });
  number.addEventListener('change', () => { setStrength(number.value); if ($('steer-input').value.trim()) run(); });
}
