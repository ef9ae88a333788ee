// The page's calls to the accounts and spaces API: one request helper that sends the session cookie and
// the CSRF header, and parses every answer with the server's own valibot schema (schema/accounts.ts).
import * as v from 'valibot';
import { jsonHeaders } from '../schema/protocol.ts';
import { FerryError, type FerryErrorCode } from './errors.ts';

export async function request(url: string, path: string, init: { method: string; body?: string }): Promise<Response> {
  try {
    return await fetch(`${url.replace(/\/+$/, '')}${path}`, {
      ...init,
      credentials: 'include',
      headers: jsonHeaders(),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (cause) {
    throw new FerryError('network', 'The server could not be reached.', { cause });
  }
}

/** The answer parsed with `schema`, or the server's refusal as a FerryError with its code and sentence. */
export async function answer<S extends v.GenericSchema>(response: Response, schema: S): Promise<v.InferOutput<S>> {
  const text = await response.text().catch(() => '');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FerryError('network', `The server answered ${response.status} with something that is not JSON.`);
  }
  if (!response.ok) {
    const { code, message } = v.is(ErrorLike, body) ? body : {};
    throw new FerryError(codeOf(code), message ?? `The server refused (${response.status}).`);
  }
  const parsed = v.safeParse(schema, body);
  if (!parsed.success) throw new FerryError('network', 'The server\'s answer is malformed.');
  return parsed.output;
}

const ErrorLike = v.object({ code: v.optional(v.string()), message: v.optional(v.string()) });

function codeOf(code: string | undefined): FerryErrorCode {
  switch (code) {
    case 'auth_required':
    case 'forbidden':
    case 'invalid':
    case 'too_large':
    case 'not_found':
      return code;
    default:
      return 'network';
  }
}
