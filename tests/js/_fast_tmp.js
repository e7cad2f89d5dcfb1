// Runs the real epub.js under jsdom and prints what it computes, as JSON on stdout.
// Reads one JSON request on stdin:
//   {"epub": "/path/book.epub", "chars": 150, "pause": 0,          -> {"locations": [...], "seconds": s}
//    "ranges": ["epubcfi(...)", ...],                               -> {"ranges": [text|null, ...]}
//    "percentages": {"cfis": [...], "values": [0.5, ...]}}          -> {"percentage_from_cfi": [...], "cfi_from_percentage": [...]}
// Any failure inside epub.js is reported as {"error": "..."} (exit 0) so callers can tell it from a crash.
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

dom.window.requestAnimationFrame = (cb) => setImmediate(() => cb(Date.now()));
const ePub = require("epubjs").default;

async function main() {
  const request = JSON.parse(fs.readFileSync(0, "utf8"));
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

// epub.js sometimes throws from a timer callback rather than rejecting its promise: report that too.
const failed = (e) => finish({ error: String((e && (e.stack || e.message)) || e) });
process.on("uncaughtException", failed);

main().then(finish, failed);
