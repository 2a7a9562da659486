// `unmask serve` through the official openai client, and its errors over plain fetch (docs/server.md).
//
//   cd tests/server/openai && npm ci && node --test openai.test.mjs     (or `node openai.test.mjs`, as CTest runs it)
//
// The binary comes from UNMASK_BINARY (default build/release/unmask). The test trains two tiny models of its own
// (a diffusion one and an autoregressive one, 30 steps each on a corpus of short sentences built from the word lists below, under a second in all) in a
// temporary folder, serves them, and stops every server it started, failed or not. UNMASK_KEEP_TMP=1 keeps the folder.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const binary = process.env.UNMASK_BINARY ?? path.resolve(here, '../../../build/release/unmask');
const KEY = 'sk-test';

// ---------------------------------------------------------------------------------------------------------------
// Servers: started here, always stopped (after(), and a last SIGKILL when node exits some other way).

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

// Starts `unmask serve ARGS --port 0` and resolves to {url, child} once the first stdout line names the address.
function startServer(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['serve', ...args, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    child.on('exit', () => children.delete(child));
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`unmask serve ${args.join(' ')}: no address after 30 s`)), 30_000);
    function fail(e) {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    }
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n')[0];
      if (!out.includes('\n')) return;
      const m = line.match(/listening on (http:\/\/[^\s/]+\/)/);
      if (!m) return fail(new Error(`unmask serve: unexpected first line: ${line}`));
      clearTimeout(timer);
      child.stdout.removeAllListeners('data');
      child.stdout.resume();
      resolve({ url: m[1], child });
    });
    child.on('error', fail);
    child.on('exit', (code, signal) => fail(new Error(`unmask serve exited (${code ?? signal}) before listening: ${err}`)));
  });
}

async function stopServer(server) {
  if (!server || server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------------------------
// Models: a corpus of short plain sentences, `data prepare`, `train` twice.

function corpus() {
  const who = ['the cat', 'a dog', 'the old man', 'my sister', 'the farmer', 'a small bird', 'the teacher',
    'our neighbour', 'the baker', 'a young girl', 'the fisherman', 'my brother'];
  const does = ['walks to', 'looks at', 'sings about', 'runs past', 'waits near', 'thinks about', 'paints',
    'finds', 'cleans', 'remembers', 'sits by', 'talks about'];
  const what = ['the river', 'a green hill', 'the red house', 'the market', 'a quiet garden', 'the school',
    'the bridge', 'the sea', 'a tall tree', 'the little boat', 'the warm kitchen', 'an empty road'];
  const when = ['in the morning', 'after lunch', 'every day', 'when it rains', 'with a smile', 'before dark',
    'on sunday', 'at night'];
  const lines = [
    'The sun is warm and the sky is blue.',
    'We eat bread and drink milk at the table.',
    'The children play in the field until the bell rings.',
    'It is cold today, so I wear my coat.',
    'She reads a book by the window.',
    'The wind moves the leaves of the tree.',
  ];
  let s = 12345; // a small LCG: the same corpus every run
  const pick = (list) => list[(s = (s * 1103515245 + 12345) % 2147483648) % list.length];
  for (let i = 0; i < 300; i++) {
    const line = `${pick(who)} ${pick(does)} ${pick(what)} ${pick(when)}.`;
    lines.push(line[0].toUpperCase() + line.slice(1));
  }
  return lines.join('\n') + '\n';
}

function unmask(...args) {
  try {
    return execFileSync(binary, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`unmask ${args.join(' ')} failed (${e.status ?? e.signal ?? e.message}): ${e.stderr ?? ""}`);
  }
}

function trainModels(dir) {
  fs.writeFileSync(path.join(dir, 'corpus.txt'), corpus());
  unmask('data', 'prepare', '--input', path.join(dir, 'corpus.txt'), '--tokenizer', 'byte', '--out', path.join(dir, 'data'));
  for (const objective of ['mdlm', 'ar']) {
    unmask('train', '--objective', objective, '--data', path.join(dir, 'data'), '--config', 'tiny', '--seq-len', '32',
      '--batch', '2', '--steps', '30', '--out', path.join(dir, objective), '-t', '1');
    // The model id is the file's stem, and two `checkpoint`s would clash.
    fs.copyFileSync(path.join(dir, objective, 'checkpoint.gguf'), path.join(dir, `${objective}.gguf`));
  }
}

// ---------------------------------------------------------------------------------------------------------------

let tmp;
let main; // both models, a key, the chat template
let small; // --parallel 1 --queue 0 --max-body 0.01
let client;
const info = {}; // model id -> its `unmask` object from /v1/models

before(async () => {
  assert.ok(fs.existsSync(binary), `no binary at ${binary} (set UNMASK_BINARY)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'unmask-openai-'));
  trainModels(tmp);
  const models = ['-m', path.join(tmp, 'mdlm.gguf'), '-m', path.join(tmp, 'ar.gguf')];
  main = await startServer([...models, '-t', '1', '--chat-template', 'chatml', '--api-key', KEY]);
  small = await startServer([...models, '-t', '1', '--parallel', '1', '--queue', '0', '--max-body', '0.01']);
  client = new OpenAI({ apiKey: KEY, baseURL: main.url + 'v1', maxRetries: 0, timeout: 60_000 });
});

after(async () => {
  await Promise.all([stopServer(main), stopServer(small)]);
  if (tmp && !process.env.UNMASK_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

const MODELS = ['mdlm', 'ar'];
const FINISH = ['stop', 'length'];

function checkUsage(usage, maxTokens) {
  assert.ok(usage, 'usage is missing');
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(usage[k]) && usage[k] >= 0, `usage.${k} = ${usage[k]}`);
  }
  assert.ok(usage.prompt_tokens > 0, 'usage.prompt_tokens is 0');
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  if (maxTokens !== undefined) assert.ok(usage.completion_tokens <= maxTokens, `${usage.completion_tokens} > max_tokens ${maxTokens}`);
}

function checkHead(obj, object, model, idPrefix) {
  assert.equal(obj.object, object);
  assert.equal(obj.model, model);
  assert.equal(typeof obj.id, 'string');
  assert.ok(obj.id.startsWith(idPrefix), `id ${obj.id} does not start with ${idPrefix}`);
  assert.ok(Number.isInteger(obj.created) && obj.created > 0, `created = ${obj.created}`);
}

// Reads a client stream to its end: the chunks, in order.
async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

// The chunks before the last that carries choices have finish_reason null; that last one has it, and usage.
function checkStreamEnd(chunks, withChoices, maxTokens) {
  const last = withChoices.at(-1);
  assert.ok(last, 'the stream has no chunk with choices');
  for (const c of withChoices.slice(0, -1)) assert.equal(c.choices[0].finish_reason, null);
  assert.ok(FINISH.includes(last.choices[0].finish_reason), `last finish_reason = ${last.choices[0].finish_reason}`);
  checkUsage(last.usage, maxTokens);
  const ids = new Set(chunks.map((c) => c.id));
  assert.equal(ids.size, 1, `a stream has one id, got ${[...ids]}`);
}

describe('the openai client', () => {
  test('models.list lists both, with their kind', async () => {
    const list = await client.models.list();
    const byId = Object.fromEntries(list.data.map((m) => [m.id, m]));
    assert.deepEqual(Object.keys(byId).sort(), ['ar', 'mdlm']);
    assert.equal(byId.mdlm.unmask.kind, 'diffusion');
    assert.equal(byId.ar.unmask.kind, 'autoregressive');
    for (const m of list.data) {
      assert.equal(m.object, 'model');
      for (const k of ['context', 'vocab']) assert.ok(Number.isInteger(m.unmask[k]) && m.unmask[k] > 0, `${m.id}: unmask.${k}`);
      for (const k of ['arch', 'sampler']) assert.equal(typeof m.unmask[k], 'string');
      info[m.id] = m.unmask;
    }
  });

  for (const model of MODELS) {
    test(`${model}: completions, streamed and not, agree`, async () => {
      const request = { model, prompt: 'The old man walks to', max_tokens: 24, temperature: 0.8, seed: 7 };
      const whole = await client.completions.create(request);
      checkHead(whole, 'text_completion', model, 'cmpl-');
      assert.equal(whole.choices.length, 1);
      const [choice] = whole.choices;
      assert.equal(choice.index, 0);
      assert.equal(typeof choice.text, 'string');
      assert.ok(FINISH.includes(choice.finish_reason), `finish_reason = ${choice.finish_reason}`);
      checkUsage(whole.usage, 24);
      assert.equal(typeof whole.unmask?.sampler, 'string');

      const chunks = await collect(await client.completions.create({ ...request, stream: true }));
      for (const c of chunks) checkHead(c, 'text_completion', model, 'cmpl-');
      const withChoices = chunks.filter((c) => c.choices.length > 0);
      assert.equal(withChoices.length, chunks.length, 'without include_usage every chunk has a choice');
      checkStreamEnd(chunks, withChoices, 24);
      assert.equal(withChoices.map((c) => c.choices[0].text).join(''), choice.text);
      assert.equal(withChoices.at(-1).choices[0].finish_reason, choice.finish_reason);
      assert.deepEqual(withChoices.at(-1).usage, whole.usage);
    });

    test(`${model}: stream_options.include_usage adds a usage chunk with no choices`, async () => {
      const stream = await client.completions.create({
        model, prompt: 'A small bird', max_tokens: 16, temperature: 0.8, seed: 3, stream: true,
        stream_options: { include_usage: true },
      });
      const chunks = await collect(stream);
      const usageChunks = chunks.filter((c) => c.choices.length === 0);
      assert.equal(usageChunks.length, 1, 'one chunk with empty choices');
      assert.equal(chunks.at(-1), usageChunks[0], 'the usage chunk comes last');
      checkUsage(usageChunks[0].usage, 16);
      const withChoices = chunks.filter((c) => c.choices.length > 0);
      checkStreamEnd(chunks, withChoices, 16);
      assert.deepEqual(usageChunks[0].usage, withChoices.at(-1).usage);
    });

    test(`${model}: chat completions, streamed and not, agree`, async () => {
      const request = {
        model, max_tokens: 24, temperature: 0.8, seed: 11,
        messages: [{ role: 'system', content: 'You answer briefly.' }, { role: 'user', content: 'Where does the cat go?' }],
      };
      const whole = await client.chat.completions.create(request);
      checkHead(whole, 'chat.completion', model, 'chatcmpl-');
      assert.equal(whole.choices.length, 1);
      const [choice] = whole.choices;
      assert.equal(choice.index, 0);
      assert.equal(choice.message.role, 'assistant');
      assert.equal(typeof choice.message.content, 'string');
      assert.ok(FINISH.includes(choice.finish_reason), `finish_reason = ${choice.finish_reason}`);
      checkUsage(whole.usage, 24);

      const chunks = await collect(await client.chat.completions.create({ ...request, stream: true }));
      for (const c of chunks) checkHead(c, 'chat.completion.chunk', model, 'chatcmpl-');
      const withChoices = chunks.filter((c) => c.choices.length > 0);
      assert.equal(withChoices[0].choices[0].delta.role, 'assistant', 'the first delta holds the role');
      checkStreamEnd(chunks, withChoices, 24);
      assert.equal(withChoices.map((c) => c.choices[0].delta.content ?? '').join(''), choice.message.content);
      assert.equal(withChoices.at(-1).choices[0].finish_reason, choice.finish_reason);
      assert.deepEqual(withChoices.at(-1).usage, whole.usage);
    });
  }

  test('mdlm: unmask.stream_canvas streams every step, the canvas only filling in', async () => {
    const maxTokens = 16;
    const stream = await client.completions.create({
      model: 'mdlm', prompt: 'The sun is', max_tokens: maxTokens, temperature: 0.8, seed: 5, stream: true,
      unmask: { steps: 8, stream_canvas: true }, // an unknown field to the client: it goes into the body as it is
    });
    const chunks = await collect(stream);
    const steps = chunks.filter((c) => c.unmask?.canvas !== undefined);
    assert.equal(steps.length, 8, 'one chunk per step');
    let nulls = maxTokens;
    steps.forEach((c, i) => {
      const u = c.unmask;
      assert.equal(u.step, i);
      assert.ok(Array.isArray(u.canvas) && u.canvas.length === maxTokens, `step ${i}: canvas of ${u.canvas?.length}`);
      for (const t of u.canvas) assert.ok(t === null || typeof t === 'string', `step ${i}: canvas entry ${t}`);
      const n = u.canvas.filter((t) => t === null).length;
      // The default sampler (LLaDA's, low-confidence remasking) never takes a committed position back.
      assert.ok(n <= nulls, `step ${i}: ${n} masked positions, ${nulls} the step before`);
      assert.deepEqual(u.remasked, []);
      for (const { pos, text } of u.committed) {
        assert.ok(Number.isInteger(pos) && pos >= 0 && pos < maxTokens, `step ${i}: committed pos ${pos}`);
        assert.equal(u.canvas[pos], text, `step ${i}: committed position ${pos} differs from the canvas`);
      }
      nulls = n;
    });
    assert.equal(nulls, 0, 'the last step leaves no masked position');
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    checkStreamEnd(chunks, withChoices, maxTokens);

    // The same request without the canvas gives the same text.
    const whole = await client.completions.create({
      model: 'mdlm', prompt: 'The sun is', max_tokens: maxTokens, temperature: 0.8, seed: 5, unmask: { steps: 8 },
    });
    assert.equal(whole.unmask.steps, 8);
    assert.equal(withChoices.map((c) => c.choices[0].text).join(''), whole.choices[0].text);
  });

  test('a wrong key is an AuthenticationError', async () => {
    const wrong = new OpenAI({ apiKey: 'sk-wrong', baseURL: main.url + 'v1', maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 401);
      return true;
    });
  });

  test('an unknown model is a NotFoundError', async () => {
    await assert.rejects(client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 4 }), (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 404);
      assert.equal(e.code, 'model_not_found');
      return true;
    });
  });

  test('max_tokens: -1 is a BadRequestError that names the field', async () => {
    await assert.rejects(client.completions.create({ model: 'mdlm', prompt: 'x', max_tokens: -1 }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 400);
      assert.match(e.message, /max_tokens/);
      assert.equal(e.param, 'max_tokens');
      return true;
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Plain HTTP: the status and OpenAI's error shape.

async function http(server, pathname, { body, raw, key = KEY, method } = {}) {
  const headers = {};
  if (key) headers.authorization = `Bearer ${key}`;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(server.url + pathname.replace(/^\//, ''), {
    method: method ?? (payload === undefined ? 'GET' : 'POST'), headers, body: payload,
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

// docs/server.md's table: the type and code of each status (404's code says which: a model or a path).
const ERRORS = {
  400: { type: 'invalid_request_error', code: 'invalid_request_error' },
  401: { type: 'authentication_error', code: 'invalid_api_key' },
  404: { type: 'not_found_error' },
  413: { type: 'invalid_request_error', code: 'request_too_large' },
  503: { type: 'server_error', code: 'server_busy' },
  504: { type: 'server_error', code: 'timeout' },
};

// {error: {message, type, param, code}}, all four there: a message, the type and code of the status, param a field or null.
function checkError(res, status, { param, code, message } = {}) {
  assert.equal(res.status, status, `status ${res.status}, body ${res.text}`);
  assert.ok(res.json && typeof res.json === 'object' && !Array.isArray(res.json), `not a JSON object: ${res.text}`);
  assert.deepEqual(Object.keys(res.json), ['error'], res.text);
  const e = res.json.error;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type'], res.text);
  assert.ok(typeof e.message === 'string' && e.message.length > 0, res.text);
  assert.ok(e.param === null || typeof e.param === 'string', res.text);
  assert.equal(e.type, ERRORS[status].type, res.text);
  assert.equal(e.code, code ?? ERRORS[status].code, res.text);
  if (param !== undefined) assert.equal(e.param, param, res.text);
  if (message !== undefined) assert.match(e.message, message, res.text);
  return e;
}

const post = (body) => http(main, '/v1/completions', { body });

describe('errors over plain HTTP', () => {
  test('malformed JSON: 400', async () => {
    checkError(await http(main, '/v1/completions', { raw: '{"model": "mdlm", "prompt": ' }), 400, { message: /JSON/ });
  });

  test('a body that is a JSON array: 400', async () => {
    checkError(await http(main, '/v1/completions', { raw: '[{"prompt": "x"}]' }), 400);
  });

  test('wrong types: 400 naming the field', async () => {
    checkError(await post({ model: 'mdlm', prompt: 5 }), 400, { param: 'prompt', message: /prompt/ });
    checkError(await post({ model: 'mdlm', prompt: 'x', temperature: 'hot' }), 400, { param: 'temperature', message: /temperature/ });
    checkError(await post({ model: 'mdlm', prompt: 'x', stream: 'yes' }), 400, { param: 'stream', message: /stream/ });
    checkError(await http(main, '/v1/chat/completions', { body: { model: 'ar', messages: 'hello' } }), 400, { param: 'messages' });
  });

  test('an unknown model: 404', async () => {
    checkError(await post({ model: 'no-such-model', prompt: 'x' }), 404, { code: 'model_not_found', param: 'model' });
  });

  test('a body over --max-body: 413', async () => {
    // The default, 1 MiB.
    checkError(await post({ model: 'mdlm', prompt: 'a'.repeat(1.1 * 1024 * 1024) }), 413);
    // --max-body 0.01: 10 KiB.
    checkError(await http(small, '/v1/completions', { body: { model: 'mdlm', prompt: 'a'.repeat(20_000) } }), 413);
    const fits = await http(small, '/v1/completions', { body: { model: 'mdlm', prompt: 'a'.repeat(100), max_tokens: 4 } });
    assert.equal(fits.status, 200, fits.text);
  });

  test('limits out of range: 400 naming the field', async () => {
    checkError(await post({ model: 'mdlm', prompt: 'x', max_tokens: 0 }), 400, { param: 'max_tokens', message: /max_tokens/ });
    checkError(await post({ model: 'ar', prompt: 'x', max_tokens: 10 ** 9 }), 400, { param: 'max_tokens', message: /max_tokens/ });
    checkError(await post({ model: 'mdlm', prompt: 'x', unmask: { steps: -3 } }), 400, { message: /steps/ });
    checkError(await post({ model: 'mdlm', prompt: 'x', top_p: 7 }), 400, { param: 'top_p', message: /top_p/ });
    checkError(await post({ model: 'mdlm', prompt: 'x', n: 2 }), 400, { param: 'n' });
  });

  test('no key, a wrong key: 401; /health needs none', async () => {
    checkError(await http(main, '/v1/models', { key: null }), 401, { code: 'invalid_api_key' });
    checkError(await http(main, '/v1/models', { key: 'sk-wrong' }), 401, { code: 'invalid_api_key' });
    checkError(await http(main, '/v1/completions', { key: null, body: { prompt: 'x' } }), 401, { code: 'invalid_api_key' });
    const health = await http(main, '/health', { key: null });
    assert.equal(health.status, 200, health.text);
    assert.deepEqual(health.json, { status: 'ok' });
  });

  test('an unknown path: 404', async () => {
    checkError(await http(main, '/v1/no-such-endpoint'), 404, { code: 'not_found' });
    checkError(await http(main, '/v1/no-such-endpoint', { body: {} }), 404, { code: 'not_found' });
  });

  test('unknown and inapplicable unmask fields: 400', async () => {
    checkError(await post({ model: 'mdlm', prompt: 'x', unmask: { bogus: 1 } }), 400, { message: /bogus/ });
    // MDLM's sampler never reads Fast-dLLM's threshold.
    checkError(await post({ model: 'mdlm', prompt: 'x', unmask: { sampler: 'mdlm', threshold: 0.5 } }), 400, { message: /threshold/ });
  });

  test('/infill: 400 on the autoregressive model, holes on the diffusion one', async () => {
    const request = { input_prefix: 'The cat walks to ', input_suffix: ' in the morning.', max_tokens: 8 };
    checkError(await http(main, '/infill', { body: { model: 'ar', ...request } }), 400);
    const res = await http(main, '/infill', { body: { model: 'mdlm', ...request, temperature: 0.8, seed: 2 } });
    assert.equal(res.status, 200, res.text);
    const { content, holes, text, usage } = res.json;
    assert.equal(typeof content, 'string');
    assert.ok(Array.isArray(holes) && holes.length === 1, res.text);
    assert.equal(holes[0], content, 'the one hole is the content');
    assert.equal(text, request.input_prefix + content + request.input_suffix);
    assert.equal(res.json.model, 'mdlm');
    checkUsage(usage);
  });

  test('a prompt longer than the context: 400', async () => {
    if (!info.mdlm) info.mdlm = (await http(main, '/v1/models')).json.data.find((m) => m.id === 'mdlm').unmask;
    const context = info.mdlm.context;
    // The byte tokenizer: one token a character, and a few more for the template.
    checkError(await post({ model: 'mdlm', prompt: 'a'.repeat(context + 8), max_tokens: 4 }), 400, { param: 'prompt' });
    // The prompt fits but the prompt and max_tokens together do not.
    checkError(await post({ model: 'ar', prompt: 'a'.repeat(context - 8), max_tokens: 32 }), 400, { message: /context/ });
  });

  test('past unmask.timeout: 504, or an error chunk once the stream started', async () => {
    const body = { model: 'mdlm', prompt: 'The', max_tokens: 400, unmask: { steps: 400, timeout: 0.05 } };
    checkError(await post(body), 504, { code: 'timeout' });
    checkError(await post({ ...body, unmask: { ...body.unmask, timeout: 1e6 } }), 400, { message: /timeout/ });
    // Through the client, the error chunk of a stream is thrown while reading it.
    const stream = await client.completions.create({ ...body, stream: true });
    await assert.rejects(collect(stream), (e) => {
      assert.ok(e instanceof OpenAI.APIError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.code, 'timeout');
      return true;
    });
  });

  test('a full queue: 503 server_busy; a client that hangs up frees its place', async () => {
    // --parallel 1 --queue 0: one request runs, none waits. Hold the one place with a long stream, a step a chunk.
    const steps = 500;
    const abort = new AbortController();
    const long = await fetch(small.url + 'v1/completions', {
      method: 'POST', signal: abort.signal, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mdlm', prompt: 'The', max_tokens: steps, stream: true, unmask: { steps, stream_canvas: true } }),
    });
    assert.equal(long.status, 200);
    const reader = long.body.getReader();
    const decoder = new TextDecoder();
    // The time of the first step and of the 30th: what a step takes, to tell a cancel from the end of the request.
    const seen = 30;
    let text = '';
    let first;
    let events = 0;
    while (events < seen) {
      const { value, done } = await reader.read();
      assert.ok(!done, `the long stream ended after ${events} chunks`);
      first ??= performance.now();
      text += decoder.decode(value, { stream: true });
      events = text.split('\n\n').length - 1;
    }
    const perStep = (performance.now() - first) / (seen - 1);
    let hungUp;
    try {
      // The long request is running now: one more has no place.
      const busy = await http(small, '/v1/completions', { body: { model: 'ar', prompt: 'x', max_tokens: 4 } });
      checkError(busy, 503, { code: 'server_busy' });
    } finally {
      abort.abort();
      await reader.cancel().catch(() => {});
      hungUp = performance.now();
    }
    // The place comes back at the long request's next step, not after its remaining ones.
    let res;
    do {
      res = await http(small, '/v1/completions', { body: { model: 'ar', prompt: 'x', max_tokens: 4 } });
      if (res.status === 200) break;
      await new Promise((r) => setTimeout(r, 10));
    } while (performance.now() - hungUp < 60_000);
    assert.equal(res.status, 200, res.text);
    const freed = performance.now() - hungUp;
    const rest = (steps - seen) * perStep;
    assert.ok(freed < rest / 2, `the place came back ${freed.toFixed(0)} ms after the hang-up; the ${steps - seen} ` +
      `steps left would take about ${rest.toFixed(0)} ms`);
  });
});
