"""The report page's fixed assets: its stylesheet and the prompt browser's script (`__PAGE_SIZE__` filled in
by the report)."""

STYLE = """<style>
h2{font-size:1.45em}h3{font-size:1.1em}
section{margin-top:2.5em;border-top:1px solid #ddd;padding-top:.5em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.gen{white-space:pre-wrap;max-width:30em}
td.scores{font-size:.8em;color:#444;white-space:nowrap}
img{display:block;margin:1em 0}
.badge{display:inline-block;padding:0 .5em;border-radius:.6em;background:#e8eefc;font-size:.85em}
.badge.refused{background:#fde2e1}.badge.answered{background:#e1f5e4}
.controls{margin:.6em 0}.controls label{margin-right:1em}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em .8em;margin:.6em 0}
.warn{color:#9a4b00}
.card pre{white-space:pre-wrap;margin:.3em 0;font-family:inherit;background:#fafafa;padding:.4em}
</style>"""

BROWSER_JS = r"""
(function () {
  const rows = JSON.parse(document.getElementById('prompt-data').textContent);
  const pageSize = __PAGE_SIZE__;
  const $ = (id) => document.getElementById(id);
  const category = (note) => (note || '').split(':')[0].trim() || '(none)';
  function fill(select, values) {
    select.innerHTML = '';
    for (const v of ['all', ...values]) {
      const o = document.createElement('option'); o.value = v; o.textContent = v; select.appendChild(o);
    }
  }
  fill($('f-group'), [...new Set(rows.map(r => r.group === null ? 'unscored' : r.group))]);
  fill($('f-note'), [...new Set(rows.map(r => category(r.note)))].sort());
  let page = 0;
  function matches(r) {
    const g = $('f-group').value, n = $('f-note').value, t = $('f-text').value.toLowerCase();
    if (g !== 'all' && (r.group === null ? 'unscored' : r.group) !== g) return false;
    if (n !== 'all' && category(r.note) !== n) return false;
    if (t && !(r.prompt + '\n' + r.response + '\n' + (r.note || '')).toLowerCase().includes(t)) return false;
    return true;
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e;
  }
  function render() {
    const shown = rows.filter(matches);
    const pages = Math.max(1, Math.ceil(shown.length / pageSize));
    page = Math.min(page, pages - 1);
    $('f-count').textContent = shown.length + ' of ' + rows.length + ' prompts';
    $('page-label').textContent = 'page ' + (page + 1) + ' of ' + pages;
    $('pager').style.display = shown.length > pageSize ? '' : 'none';
    $('prev').disabled = page === 0; $('next').disabled = page >= pages - 1;
    const cards = $('cards'); cards.innerHTML = '';
    for (const r of shown.slice(page * pageSize, (page + 1) * pageSize)) {
      const c = el('div', 'card');
      const head = el('div');
      head.appendChild(el('b', '', String(r.id) + ' '));
      head.appendChild(el('span', 'badge ' + (r.group || 'unscored'), r.group || 'unscored'));
      const score = r.judge_score === null ? 'n/a' : r.judge_score.toFixed(0);
      const proj = r.projection === null || Number.isNaN(r.projection) ? 'n/a' : r.projection.toFixed(2);
      head.appendChild(el('span', 'meta', '  ' + (r.note || '') + ' | judge ' + score + ' | projection ' + proj));
      c.appendChild(head);
      c.appendChild(el('div', 'meta', 'prompt')); c.appendChild(el('pre', '', r.prompt));
      c.appendChild(el('div', 'meta', 'response')); c.appendChild(el('pre', '', r.response));
      cards.appendChild(c);
    }
  }
  for (const id of ['f-group', 'f-note']) $(id).addEventListener('change', () => { page = 0; render(); });
  $('f-text').addEventListener('input', () => { page = 0; render(); });
  $('prev').addEventListener('click', () => { page -= 1; render(); });
  $('next').addEventListener('click', () => { page += 1; render(); });
  render();
})();
"""  # noqa: E501  (browser code inside a string: its lines are the page's)
