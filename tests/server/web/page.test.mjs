// The page of `unmask serve` in headless Chromium: both canvases fill in, live, and the figures appear.
//
//   npm ci && node page.test.mjs
//
// It trains two tiny models (mdlm and ar, 30 steps each, a second or so), serves them on a free port, loads the page,
// presses Generate and watches. Environment:
//   UNMASK_BINARY      the unmask binary (default /work/main/build/release/unmask)
//   UNMASK_CHROMIUM    the Chromium (default /usr/bin/chromium)
//   UNMASK_SCREENSHOT  1: write the finished page to docs/img/server-page.png
//   UNMASK_MODELS      serve these GGUF files (comma-separated, relative to the repository root) instead of training
//                      two tiny ones; the picture in the docs is of the shipped twins:
//                      UNMASK_SCREENSHOT=1 UNMASK_MODELS=models/kjv-mdlm.gguf,models/kjv-ar.gguf node page.test.mjs
//   UNMASK_URL         test a server already running there instead (no training, no server started)
// Exit code 0 on success; otherwise one line saying what failed, and 1.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");
const binary = process.env.UNMASK_BINARY || "/work/main/build/release/unmask";
const chromiumPath = process.env.UNMASK_CHROMIUM || "/usr/bin/chromium";
const screenshot = process.env.UNMASK_SCREENSHOT === "1" ? path.join(repo, "docs/img/server-page.png") : null;

const MAX_TOKENS = 64;
const STEPS = MAX_TOKENS / 2;  // two positions per step: the canvas fills in over many steps
const RUN_TIMEOUT_MS = 60_000;

class Failure extends Error {}
function check(ok, message) {
  if (!ok) throw new Failure(message);
}

// A corpus of a few hundred lines, enough for 30 training steps of a byte-level model.
function writeCorpus(file) {
  const verses = [
    "And God said, Let there be light: and there was light.",
    "And God saw the light, that it was good: and God divided the light from the darkness.",
    "And the evening and the morning were the first day.",
    "And the earth was without form, and void; and darkness was upon the face of the deep.",
    "And God called the dry land Earth; and the gathering together of the waters called he Seas.",
    "And the earth brought forth grass, and herb yielding seed after his kind.",
  ];
  const lines = [];
  for (let i = 0; i < 300; i++) lines.push(verses[i % verses.length]);
  fs.writeFileSync(file, lines.join("\n") + "\n");
}

function unmask(args) {
  const r = spawnSync(binary, args, { encoding: "utf8" });
  if (r.error) throw new Failure(`${binary}: ${r.error.message} (set UNMASK_BINARY)`);
  check(r.status === 0, `unmask ${args.join(" ")} exited ${r.status}: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
}

function trainModels(dir) {
  const corpus = path.join(dir, "corpus.txt");
  writeCorpus(corpus);
  unmask(["data", "prepare", "--input", corpus, "--tokenizer", "byte", "--out", path.join(dir, "data")]);
  for (const objective of ["mdlm", "ar"])
    unmask(["train", "--objective", objective, "--data", path.join(dir, "data"), "--config", "tiny", "--seq-len", "32",
            "--batch", "2", "--steps", "30", "-t", "1", "--out", path.join(dir, objective)]);
  // The server names a model after its file: give the two checkpoints names of their own.
  return ["mdlm", "ar"].map((objective) => {
    const file = path.join(dir, `tiny-${objective}.gguf`);
    fs.renameSync(path.join(dir, objective, "checkpoint.gguf"), file);
    return file;
  });
}

// Starts `unmask serve` on a free port; resolves with the URL of the line it prints at start.
function startServer(models) {
  const args = ["serve", ...models.flatMap((m) => ["-m", m]), "--port", "0", "-t", "1"];
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Failure(
      `unmask ${args.join(" ")}: no http://127.0.0.1:PORT/ line on stdout after 30 s; stdout: ${out.trim()} ` +
      `stderr: ${err.trim().slice(-1000)}`)), 30_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) { clearTimeout(timer); resolve(m[0]); }
    });
    child.stderr.on("data", (d) => { err += d; });
    child.on("error", (e) => { clearTimeout(timer); reject(new Failure(`${binary}: ${e.message}`)); });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Failure(`unmask serve exited (${code ?? signal}) before it listened: ${err.trim().slice(-2000)}`));
    });
  });
  return { child, url, stderr: () => err };
}

async function stopServer(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

// What a canvas shows: its cells' positions, steps and whether they are masked.
function readCanvas(page, id) {
  return page.$$eval(`#${id} [data-pos]`, (cells) => cells.map((c) => ({
    pos: Number(c.dataset.pos), step: c.dataset.step, masked: c.classList.contains("masked"), text: c.textContent,
  })));
}

async function testPage(url) {
  check(fs.existsSync(chromiumPath), `no Chromium at ${chromiumPath} (apt-get install chromium, or set UNMASK_CHROMIUM)`);
  const { chromium } = await import("playwright-core").catch(() => {
    throw new Failure(`playwright-core is not installed: run \`npm ci\` in ${here}`);
  });
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => { if (m.type() === "error") pageErrors.push(m.text()); });

    const r = await page.goto(url);
    check(r && r.ok(), `GET ${url}: status ${r && r.status()}`);
    // The selects fill from GET /v1/models.
    await page.waitForFunction(() => document.querySelector("#model-diffusion").value &&
                                     document.querySelector("#model-ar").value, null, { timeout: 10_000 })
      .catch(() => { throw new Failure("the model selects did not fill from /v1/models: " + pageErrors.join("; ")); });

    await page.fill("#prompt", "And God said");
    await page.fill("#max-tokens", String(MAX_TOKENS));
    await page.fill("#steps", String(STEPS));
    await page.fill("#seed", "7");

    // Watch the diffusion canvas for a frame with masked and filled cells at once: it must fill in, not appear.
    await page.evaluate(() => {
      window.__frames = { mixed: 0, all: 0 };
      const canvas = document.querySelector("#canvas-diffusion");
      new MutationObserver(() => {
        const masked = canvas.querySelectorAll("[data-pos].masked").length;
        const filled = canvas.querySelectorAll("[data-pos][data-step]").length;
        window.__frames.all++;
        if (masked > 0 && filled > 0) window.__frames.mixed++;
      }).observe(canvas, { subtree: true, childList: true, attributes: true, characterData: true });
    });

    const t0 = Date.now();
    await page.click("#generate");
    await page.waitForFunction(() => document.querySelector("#canvas-diffusion").dataset.done === "1" &&
                                     document.querySelector("#canvas-ar").dataset.done === "1",
                               null, { timeout: RUN_TIMEOUT_MS, polling: 50 })
      .catch(async () => {
        const status = await page.$$eval(".status", (s) => s.map((x) => x.id + ": " + x.textContent).join("; "));
        throw new Failure(`the runs did not finish in ${RUN_TIMEOUT_MS / 1000} s (${status})`);
      });
    const seconds = (Date.now() - t0) / 1000;

    for (const side of ["diffusion", "ar"]) {
      const error = await page.$eval(`#canvas-${side}`, (c) => c.dataset.error);
      const status = await page.$eval(`#status-${side}`, (s) => s.textContent);
      check(error !== "1", `the ${side} run failed: ${status}`);
    }

    const diffusion = await readCanvas(page, "canvas-diffusion");
    check(diffusion.length > 0, "the diffusion canvas has no cells");
    check(diffusion.every((c, i) => c.pos === i), "the diffusion cells' data-pos are not 0, 1, 2, …");
    const masked = diffusion.filter((c) => c.masked);
    check(masked.length === 0, `${masked.length} of ${diffusion.length} diffusion cells are still masked at the end`);
    check(diffusion.every((c) => c.step !== undefined), "a filled diffusion cell has no data-step");
    const steps = new Set(diffusion.map((c) => c.step));
    check(steps.size >= 2, `the diffusion canvas filled in at ${steps.size} step(s); expected several ` +
                           `(--steps ${STEPS} for ${MAX_TOKENS} tokens)`);

    const ar = await readCanvas(page, "canvas-ar");
    check(ar.length > 0, "the autoregressive canvas has no cells");
    check(ar.every((c) => !c.masked && c.step !== undefined), "an autoregressive cell is masked or has no data-step");

    const frames = await page.evaluate(() => window.__frames);
    check(frames.mixed > 0, `no frame of the diffusion canvas had masked and filled cells at once ` +
                            `(${frames.all} frames seen)`);

    for (const side of ["diffusion", "ar"]) {
      const figures = await page.$$eval(`#figures-${side} div`, (ds) => Object.fromEntries(
        ds.map((d) => [d.querySelector("dt").textContent, d.querySelector("dd").textContent])));
      check(Object.keys(figures).length > 0, `no figures under the ${side} canvas`);
      for (const k of ["tokens", "steps", "forward passes", "tokens / s"])
        check(figures[k] && figures[k] !== "–", `the ${side} figure "${k}" is missing (${JSON.stringify(figures)})`);
    }
    check(pageErrors.length === 0, "the page logged errors: " + pageErrors.join("; "));

    if (screenshot) {
      fs.mkdirSync(path.dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
      console.log(`screenshot: ${screenshot}`);
    }
    console.log(`ok: diffusion ${diffusion.length} cells over ${steps.size} steps (${frames.mixed} of ` +
                `${frames.all} frames part-filled), autoregressive ${ar.length} cells, both done in ${seconds.toFixed(2)} s`);
  } finally {
    await browser.close();
  }
}

async function main() {
  if (process.env.UNMASK_URL) return testPage(process.env.UNMASK_URL);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "unmask-page-"));
  let server = null;
  try {
    const given = process.env.UNMASK_MODELS;
    const models = given ? given.split(",").map((m) => path.resolve(repo, m)) : trainModels(dir);
    server = startServer(models);
    await testPage(await server.url);
  } finally {
    if (server) await stopServer(server.child);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => {
  console.error("page.test: " + (e instanceof Failure ? e.message : e.stack || e));
  process.exit(1);
});
