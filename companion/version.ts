/** Companion software version, sent in the link `hello` frame for support (max 32 chars). */
export const COMPANION_VERSION = '0.1.0' as const;
