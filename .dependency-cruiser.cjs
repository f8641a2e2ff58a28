/**
 * Import rules, checked rather than hoped for (STYLE.md 4). Run: `npm run depcheck`.
 */
module.exports = {
  forbidden: [
    {
      name: 'cards-import-only-cards',
      comment: 'cards/ imports nothing of ours but its own templates and builders',
      severity: 'error',
      from: { path: '^cards/' },
      to: { path: '^(bot|companion|storage|protocol|common)/' },
    },
    {
      name: 'journeys-no-adapters',
      comment: 'pure journeys import no adapter, no storage implementation, no botbuilder',
      severity: 'error',
      from: { path: '^bot/journeys/.*[.]journey[.]ts$' },
      to: { path: '(adapter|sqlite|mongo|botbuilder|restify|node_modules)' , pathNot: '^node_modules/zod' },
    },
    {
      name: 'bot-not-companion',
      comment: 'bot/ never imports companion/ (the protocol module is the shared piece)',
      severity: 'error',
      from: { path: '^bot/' },
      to: { path: '^companion/' },
    },
    {
      name: 'companion-not-bot',
      comment: 'companion/ never imports bot/ or storage/',
      severity: 'error',
      from: { path: '^companion/' },
      to: { path: '^(bot|storage)/' },
    },
    {
      name: 'only-pcsc-adapter-imports-pcsclite',
      comment: 'the PC/SC adapter is the only importer of pcsclite (STYLE.md 1)',
      severity: 'error',
      from: { pathNot: '^companion/pcsc/' },
      to: { path: 'node_modules/pcsclite' },
    },
    {
      name: 'piv-knows-no-driver',
      comment: 'the PIV layer talks only to the CardConnection interface',
      severity: 'error',
      from: { path: '^companion/piv/' },
      to: { path: '^companion/(pcsc|virtual-card|link|pairing|passcode-page)/' },
    },
    {
      name: 'storage-port-independent',
      comment: 'storage/ does not import the bot or the companion',
      severity: 'error',
      from: { path: '^storage/' },
      to: { path: '^(bot|companion|cards)/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '\\.spec\\.ts$' },
  },
};
