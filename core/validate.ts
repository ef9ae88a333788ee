// Per-op limits. A structurally valid op that breaks one of these is *rejected* (permanently, with a
// code) rather than refusing the whole batch: the op still consumes its seq, so the device's later ops
// are not blocked behind it (DESIGN invariants 3 and 7). Devices run the same check before enqueuing.
import { LIMITS, NAME_PATTERN, utf8Length } from './limits.ts';
import type { Op } from './types.ts';

export type OpProblemCode = 'invalid' | 'too_large';
export interface OpProblem {
  code: OpProblemCode;
  message: string;
}

/** Nesting deeper than this is refused: it has no use in app data and can exhaust a parser's stack. */
export const MAX_VALUE_DEPTH = 32;

export function opProblem(op: Op): OpProblem | null {
  for (const [what, id] of [['id', op.id], ['device', op.device], ['space', op.space], ['key', op.key]] as const) {
    if (id.length === 0) return invalid(`The op's ${what} is empty.`);
    if (overBytes(id, LIMITS.idBytes)) {
      return { code: 'too_large', message: `The op's ${what} is longer than ${LIMITS.idBytes} bytes.` };
    }
  }
  if (!NAME_PATTERN.test(op.collection)) {
    return invalid(`Collection name "${clip(op.collection)}" must match ${NAME_PATTERN.source}.`);
  }
  if (op.kind === 'delete') {
    return op.value === undefined ? null : invalid('A delete carries no value.');
  }
  if (op.value === undefined) return invalid(`A ${op.kind} needs a value.`);
  for (const name of Object.keys(op.value)) {
    if (!NAME_PATTERN.test(name)) return invalid(`Field name "${clip(name)}" must match ${NAME_PATTERN.source}.`);
  }
  if (depthOf(op.value, 0) > MAX_VALUE_DEPTH) {
    return invalid(`The value is nested deeper than ${MAX_VALUE_DEPTH} levels.`);
  }
  const text = JSON.stringify(op.value);
  if (overBytes(text, LIMITS.valueBytes)) {
    return { code: 'too_large', message: `The value is ${utf8Length(text)} bytes; the limit is ${LIMITS.valueBytes}.` };
  }
  return null;
}

/** Whether `text` is longer than `limit` in UTF-8. A UTF-16 unit is at most 3 bytes, so a short text is
 * decided without counting: planning checks every op, and counting was most of the check's time. */
function overBytes(text: string, limit: number): boolean {
  return text.length * 3 > limit && utf8Length(text) > limit;
}

function depthOf(value: unknown, depth: number): number {
  if (depth > MAX_VALUE_DEPTH || value === null || typeof value !== 'object') return depth;
  let deepest = depth + 1;
  for (const child of Object.values(value)) deepest = Math.max(deepest, depthOf(child, depth + 1));
  return deepest;
}

function invalid(message: string): OpProblem {
  return { code: 'invalid', message };
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
