// The suite asks for Node.js 22 because it imports `fs.globSync`, which only
// its `tier-check` command uses; Debian's Node.js 20 lacks it and the import
// fails at startup. This loader gives the suite an `fs` that has it (and
// throws if it is ever called), so the server scenarios run on Node.js 20.
// Use: node --import ./node20.mjs node_modules/conformance-*/dist/index.js
import { register } from 'node:module';

const fsWithGlob = 'data:text/javascript,' + encodeURIComponent(`
import * as fs from 'node:fs';
export * from 'node:fs';
export default fs.default ?? fs;
export function globSync() { throw new Error('fs.globSync needs Node.js 22'); }
`);

const hooks = 'data:text/javascript,' + encodeURIComponent(`
export async function resolve(specifier, context, next) {
  const fromSuite = context.parentURL?.includes('/conformance-') && context.parentURL.endsWith('/dist/index.js');
  if (fromSuite && (specifier === 'fs' || specifier === 'node:fs')) {
    return { url: ${JSON.stringify(fsWithGlob)}, shortCircuit: true };
  }
  return next(specifier, context);
}
`);

if (typeof (await import('node:fs')).globSync !== 'function') {
  register(hooks);
}
