// The account calls as one chunk, which client/index.ts loads on the first of them (opening Ferry needs
// none, and a token app never does): signing in and out, the session, spaces and their members. Each is
// defined, and documented, in its own module.
export { login, logout, me } from './auth.ts';
export { currentSession, endServerSession, signIn } from './session.ts';
export { createSpace, invite, leave, members, removeMember, renameSpace, setRole } from './spaces.ts';
