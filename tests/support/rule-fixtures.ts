// The write rules the two-target suites run (AppDeps.rules): named, so a server process on another runtime
// (target-server.ts) loads the very same functions from its own copy of this module.
import * as v from 'valibot';
import type { WriteRules } from '../../core/logic.ts';
import type { CollectionVersions } from '../../core/versions.ts';
import type { CollectionSchemas } from '../../schema/collections.ts';

export const RULE_FIXTURES = {
  /**
   * `notes`: the server stamps who wrote last and when (`updated_by`, `updated_at` by the server's clock)
   * and trims the title; a note whose `locked` is true refuses every change but its unlocking by an owner;
   * only the writer who created a note (`created_by`, computed once) may delete it. `boom`: a rule that
   * throws, with a secret in its error, for every op whose title is "boom"; `bad`: one that answers junk.
   */
  notes: {
    notes: ({ op, current, writer, now }) => {
      if (current?.locked === true && !(writer.role === 'owner' && op.kind !== 'delete' && op.value?.locked === false)) {
        return { reject: 'locked', message: 'This note is locked; only an owner can unlock it.' };
      }
      if (op.kind === 'delete') {
        return current !== null && current.created_by !== writer.user
          ? { reject: 'not_yours', message: 'Only whoever wrote this note may delete it.' }
          : undefined;
      }
      if (op.value?.title === 'boom') throw new Error('secret-token-123 leaked from the rule');
      if (op.value?.title === 'bad') return { set: { 'Not A Name': 1 } };
      const set: Record<string, string | number> = { updated_by: writer.user, updated_at: now };
      if (current === null) set.created_by = writer.user;
      if (typeof op.value?.title === 'string') set.title = op.value.title.trim();
      return { set };
    },
  },
} as const satisfies Record<string, WriteRules>;

export type RuleFixture = keyof typeof RULE_FIXTURES;

/**
 * Schema versions (AppDeps.versions) with the schemas of the versions they bring ops up to. `renamed`:
 * version 2 of `notes` renamed `title` to `name` (its schema takes `name` only, so a version-1 op reaches it
 * only through the upgrade); `tags` is at version 3 with an upgrade from 2 alone, so a version-1 tag has no
 * path; `boom`: an upgrade that throws, with a secret in its error.
 */
export const VERSION_FIXTURES = {
  renamed: {
    versions: {
      notes: {
        version: 2,
        upgrade: (op) => {
          const { title, ...rest } = op.value ?? {};
          return title === undefined ? rest : { ...rest, name: title };
        },
      },
      tags: { version: 3, upgrade: (op, from) => (from === 2 ? { ...op.value, color: 'grey' } : undefined) },
      boom: {
        version: 2,
        upgrade: () => {
          throw new Error('secret-token-456 leaked from the upgrade');
        },
      },
    },
    collections: { notes: v.strictObject({ name: v.string(), done: v.optional(v.boolean()) }) },
  },
} as const satisfies Record<string, { versions: CollectionVersions; collections: CollectionSchemas }>;

export type VersionFixture = keyof typeof VERSION_FIXTURES;
