import { describe, expect, it } from 'vitest';
import { MailSendFailedError } from '../mail.port';
import { GraphMailSendFailedError, GraphMailStartupError, aadstsCode, readGraphError, safeGraphCode } from './graph-mail.errors';

describe('readGraphError', () => {
  const body = JSON.stringify({
    error: { code: 'ErrorInvalidRecipients', message: 'The recipient alex@trust.example.org is not valid.', innerError: { 'request-id': 'B0A1C2D3-0000-4000-8000-000000000001', date: '2026-07-03T08:45:00' } },
  });

  it('takes the code and the request id, preferring the header, never the message', () => {
    expect(readGraphError(body, null)).toEqual({ graphCode: 'ErrorInvalidRecipients', requestId: 'b0a1c2d3-0000-4000-8000-000000000001' });
    expect(readGraphError(body, '11111111-0000-4000-8000-000000000002').requestId).toBe('11111111-0000-4000-8000-000000000002');
    expect(JSON.stringify(readGraphError(body, null))).not.toContain('alex@');
  });

  it('copes with a body that is not Graph JSON', () => {
    expect(readGraphError('<html>bad gateway</html>', null)).toEqual({ graphCode: 'unknown', requestId: null });
    expect(readGraphError('', 'not a request id <script>')).toEqual({ graphCode: 'unknown', requestId: null });
  });
});

describe('safeGraphCode', () => {
  it('keeps identifiers only', () => {
    expect(safeGraphCode('ErrorAccessDenied')).toBe('ErrorAccessDenied');
    expect(safeGraphCode('Request_BadRequest')).toBe('Request_BadRequest');
    expect(safeGraphCode('bad code with spaces')).toBe('unknown');
    expect(safeGraphCode(42)).toBe('unknown');
  });
});

describe('aadstsCode', () => {
  it('finds the AADSTS code in an Entra error text', () => {
    expect(aadstsCode(new Error('invalid_client: Error(s): 7000215 - Timestamp: x - Description: AADSTS7000215: Invalid client secret provided.'))).toBe('AADSTS7000215');
    expect(aadstsCode('Error(s): 700016 - Description: ...')).toBe('AADSTS700016');
    expect(aadstsCode(new Error('endpoints_resolution_error'))).toBeUndefined();
  });
});

describe('GraphMailSendFailedError', () => {
  it('is a MAIL.SEND_FAILED with Graph facts in meta', () => {
    const err = new GraphMailSendFailedError('Microsoft Graph refused the message (HTTP 400 ErrorInvalidRecipients).', {
      retryable: false,
      kind: 'unlock_code',
      messageId: '6f1c1c4e-2f7e-4b7e-9f0e-3d9b0f7c2a11',
      status: 400,
      requestId: 'b0a1c2d3-0000-4000-8000-000000000001',
      graphCode: 'ErrorInvalidRecipients',
      attempts: 1,
    });
    expect(err).toBeInstanceOf(MailSendFailedError);
    expect(err.code).toBe('MAIL.SEND_FAILED');
    expect(err.retryable).toBe(false);
    expect(err.meta).toEqual({
      retryable: false,
      reason: 'provider',
      kind: 'unlock_code',
      messageId: '6f1c1c4e-2f7e-4b7e-9f0e-3d9b0f7c2a11',
      status: 400,
      requestId: 'b0a1c2d3-0000-4000-8000-000000000001',
      graphCode: 'ErrorInvalidRecipients',
      attempts: 1,
    });
    expect(Object.isFrozen(err.meta)).toBe(true);
    expect(err.toJSON()).toMatchObject({ code: 'MAIL.SEND_FAILED', meta: { status: 400 } });
  });
});

describe('GraphMailStartupError', () => {
  it('is CONFIG.INVALID when a setting is named, MAIL.GRAPH_START_FAILED otherwise', () => {
    expect(new GraphMailStartupError('GRAPH_SENDER is not set', { setting: 'GRAPH_SENDER' })).toMatchObject({ code: 'CONFIG.INVALID', meta: { setting: 'GRAPH_SENDER' } });
    expect(new GraphMailStartupError('no answer', {})).toMatchObject({ code: 'MAIL.GRAPH_START_FAILED', meta: { setting: null } });
  });
});
