// Bundles the flow editor's browser code into webui/static/vendor (run by `make assets`).
// The output is committed: serving the application needs neither npm nor a CDN.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const cm = join(here, "node_modules", "codemirror");
const out = join(here, "..", "webui", "static", "vendor", "codemirror");
const version = JSON.parse(readFileSync(join(cm, "package.json"), "utf8")).version;
const banner = `/* CodeMirror ${version} (MIT licence, see LICENSE) — bundled by assets/build.mjs */\n`;
const parts = ["lib/codemirror.js", "mode/yaml/yaml.js"];

mkdirSync(out, { recursive: true });
writeFileSync(
  join(out, "codemirror.js"),
  banner + parts.map((p) => readFileSync(join(cm, p), "utf8")).join(";\n"),
);
writeFileSync(join(out, "codemirror.css"), banner + readFileSync(join(cm, "lib/codemirror.css"), "utf8"));
writeFileSync(join(out, "LICENSE"), readFileSync(join(cm, "LICENSE"), "utf8"));
console.log(`codemirror ${version} → ${out}`);
