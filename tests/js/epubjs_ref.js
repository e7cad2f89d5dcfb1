// Runs the real epub.js under jsdom and prints what it computes, as JSON on stdout.
// Reads one JSON request on stdin (or a JSON array of them: then prints an array of answers, in order):
//   {"epub": "/path/book.epub", "chars": 150, "pause": 0,          -> {"locations": [...], "seconds": s}
//    "ranges": ["epubcfi(...)", ...],                               -> {"ranges": [text|null, ...]}
//    "percentages": {"cfis": [...], "values": [0.5, ...]},          -> {"percentage_from_cfi": [...], "cfi_from_percentage": [...]}
//    "fast_ticks": true}                                            (see below; for tests, never for timing)
// Any failure inside epub.js is reported as {"error": "..."} (exit 0) so callers can tell it from a crash;
// in a batch, each request's failure is its own answer and the next request still runs.
"use strict";
const fs = require("fs");
const { JSDOM } = require("jsdom");

const dom = new JSDOM("<!DOCTYPE html><html><head></head><body></body></html>", { url: "http://localhost/", pretendToBeVisual: true });
for (const name of ["window", "document", "DOMParser", "XMLSerializer", "NodeFilter", "Node", "XPathResult", "navigator"]) {
  if (name === "window") global.window = dom.window;
  else if (!(name in global) || name === "navigator") {
    try { global[name] = dom.window[name]; } catch (e) { /* navigator is read-only on newer node */ }
  }
}
// epub.js turns resources into blob: URLs while opening a book; jsdom has no object URLs, and none are needed here.
let objectUrls = 0;
dom.window.URL.createObjectURL = () => `blob:http://localhost/${++objectUrls}`;
dom.window.URL.revokeObjectURL = () => {};
// epub.js (compiled) checks `typeof window`, `window.decodeURIComponent`, `document.createTreeWalker`.

// epub.js's queue waits for one animation frame per section: 16 ms under jsdom's 60 Hz frames, as in a
// browser (so the bench times what a reader pays). "fast_ticks" runs those frames at once: the same work in
// the same order, the same output, without ~6 s of idle waiting on a long book (what the tests use).
let fastTicks = false;
const visualFrame = dom.window.requestAnimationFrame.bind(dom.window);
dom.window.requestAnimationFrame = (cb) => (fastTicks ? setImmediate(() => cb(Date.now())) : visualFrame(cb));

const ePub = require("epubjs").default;

async function answer(request) {
  fastTicks = Boolean(request.fast_ticks);
  const data = fs.readFileSync(request.epub);
  const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  const book = ePub(buffer);
  await book.ready;
  const out = {};
  if (request.chars !== undefined) {
    if (request.pause !== undefined && request.pause !== null) book.locations.pause = request.pause;
    const t0 = process.hrtime.bigint();
    await book.locations.generate(request.chars);
    out.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    out.locations = JSON.parse(book.locations.save());
  }
  if (request.ranges) {
    out.ranges = [];
    for (const cfi of request.ranges) {
      try {
        const range = await book.getRange(cfi);
        out.ranges.push(range ? range.toString() : null);
      } catch (e) {
        out.ranges.push(null);
      }
    }
  }
  if (request.percentages) {
    if (request.percentages.locations) book.locations.load(request.percentages.locations);
    out.percentage_from_cfi = (request.percentages.cfis || []).map((c) => book.locations.percentageFromCfi(c));
    out.cfi_from_percentage = (request.percentages.values || []).map((p) => book.locations.cfiFromPercentage(p));
  }
  return out;
}

// Exit only once stdout has drained: a piped stdout is asynchronous and process.exit() would cut it off.
function finish(obj) {
  process.stdout.write(JSON.stringify(obj), () => process.exit(0));
}

const errorText = (e) => String((e && (e.stack || e.message)) || e);

// epub.js sometimes throws from a timer callback rather than rejecting its promise: that fails the request
// being answered (whose promise may never settle otherwise).
let failCurrent = null;
process.on("uncaughtException", (e) => (failCurrent ? failCurrent(e) : finish({ error: errorText(e) })));

function guarded(request) {
  return new Promise((resolve) => {
    const done = (value) => {
      failCurrent = null;
      resolve(value);
    };
    failCurrent = (e) => done({ error: errorText(e) });
    answer(request).then(done, failCurrent);
  });
}

async function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  if (!Array.isArray(input)) return guarded(input);
  const answers = [];
  for (const request of input) answers.push(await guarded(request));
  return answers;
}

main().then(finish, (e) => finish({ error: errorText(e) }));
