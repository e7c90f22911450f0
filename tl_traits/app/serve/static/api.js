// Talking to the dashboard's server: JSON requests, and NDJSON streams read line by line as they arrive.

async function failure(response) {
  let message = `the server answered ${response.status}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') message = body.error;
  } catch (_) { /* not JSON: keep the status line */ }
  return new Error(message);
}

export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: 'application/json' } });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function postJSON(url, data, signal) {
  const response = await fetch(url, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(data), signal,
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

// Yields each event of a streamed answer; an `error` event becomes a thrown Error. Aborting `signal` closes the
// connection, and the server stops that answer at its next token.
export async function* streamEvents(url, data, signal) {
  const response = await fetch(url, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(data), signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (!line.trim()) continue;
      const event = JSON.parse(line);
      if (event.type === 'error') throw new Error(event.message);
      yield event;
    }
  }
}
