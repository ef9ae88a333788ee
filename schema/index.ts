// The protocol schemas as a package entry (`@ferry/client/protocol`, `@ferry/server/protocol`): the
// valibot schema of every wire message and body, the protocol's fixed facts, and the collection check
// both sides run. For a client of another kind (a native app, a script) that speaks PROTOCOL.md itself,
// and for tests of an app's own server. Each name is defined once, in the module it is re-exported from.
export {
  AckBody, Down, DownAck, DownCaughtUp, DownChanges, DownError, DownPong, DownReset, DownSpaces, DownWelcome,
  EntityWire, ErrorBody, ErrorCode, OpResultSchema, PushBody, SnapshotBody, Up, UpHello, UpPing, UpPush, UpSubscribe,
} from './wire.ts';
export { describeIssues, OpSchema } from './op.ts';
export {
  AccountBody, AddMemberAnswer, AddMemberBody, CreateSpaceBody, LoginBody, MeBody, MemberRef, MembersBody,
  RenameSpaceBody, Role, SpaceRef, UserName, UserRef,
} from './accounts.ts';
export {
  CLOSE, CSRF_HEADER, CSRF_VALUE, ERROR_CODES, PROTOCOL_VERSION, SOCKET_PROTOCOL, SYNC_TAG, TOKEN_PROTOCOL_PREFIX,
  jsonHeaders, socketProtocols, statusOf, type ErrorCodeName,
} from './protocol.ts';
export { collectionProblem, type CollectionSchemas } from './collections.ts';
export type { EntityRow, Fields, Json, Op, OpKind, OpResult, OpResultKind, Stamp } from '../core/types.ts';
