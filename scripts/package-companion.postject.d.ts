/** Types for `postject` 1.0.0-alpha.6 (it ships none): the one function the companion packager calls. */
declare module 'postject' {
  /**
   * Inject `resourceData` into the executable `filename` as resource `resourceName` and flip the
   * sentinel fuse (Node docs, "Single executable applications").
   */
  export function inject(
    filename: string,
    resourceName: string,
    resourceData: Buffer,
    options?: { sentinelFuse?: string; machoSegmentName?: string; overwrite?: boolean },
  ): Promise<void>;
}
