// Regenerates oracle.json: the results GitHub's official expression
// evaluator, @actions/expressions, gives for every case in
// oracle_cases.json. The Go tests compare against that file, so they need
// no Node at test time.
//
// Run from a directory where the package is installed:
//
//   cd /tmp && npm install @actions/expressions@0.3.61
//   node /path/to/guest/expr/testdata/gen_oracle.mjs
//
// It reads and writes next to itself.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";

const pkgDir = path.join(process.cwd(), "node_modules", "@actions", "expressions");
const { Lexer, Parser, Evaluator, data } = await import(pathToFileURL(path.join(pkgDir, "dist", "index.js")));
const version = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;

const here = path.dirname(fileURLToPath(import.meta.url));
const input = JSON.parse(fs.readFileSync(path.join(here, "oracle_cases.json"), "utf8"));

// Numbers JSON cannot hold are written as strings.
function plainNumber(n) {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "Infinity";
  if (n === -Infinity) return "-Infinity";
  return n;
}

function plain(d) {
  switch (d.kind) {
    case data.Kind.Null:
      return null;
    case data.Kind.Number:
      return plainNumber(d.value);
    case data.Kind.Boolean:
    case data.Kind.String:
      return d.value;
    case data.Kind.Array:
      return d.values().map(plain);
    default: {
      const o = {};
      for (const p of d.pairs()) o[p.key] = plain(p.value);
      return o;
    }
  }
}

function evaluate(expr, contexts) {
  const ctx = JSON.parse(JSON.stringify(contexts), data.reviver);
  try {
    const tokens = new Lexer(expr).lex().tokens;
    const tree = new Parser(tokens, Object.keys(contexts), []).parse();
    const r = new Evaluator(tree, ctx).evaluate();
    return { kind: data.Kind[r.kind], value: plain(r) };
  } catch (e) {
    return { error: e.message };
  }
}

const cases = input.cases.map((c) => ({
  expr: c.expr,
  ...(c.ctx ? { ctx: c.ctx } : {}),
  want: evaluate(c.expr, input.contexts[c.ctx || "none"]),
}));

const out = {
  generated: `by gen_oracle.mjs from oracle_cases.json with @actions/expressions@${version}; do not edit`,
  contexts: input.contexts,
  cases,
};
// One case per line keeps diffs of regenerated data readable.
const text = [
  "{",
  ` "generated": ${JSON.stringify(out.generated)},`,
  ` "contexts": ${JSON.stringify(out.contexts)},`,
  ` "cases": [`,
  cases.map((c) => "  " + JSON.stringify(c)).join(",\n"),
  " ]",
  "}",
].join("\n");
fs.writeFileSync(path.join(here, "oracle.json"), text + "\n");
console.log(`wrote ${cases.length} cases`);
