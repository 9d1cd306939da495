// A portal built on openid-client (the OpenID-certified Node library), with its default settings,
// driven by Chave's tests: one JSON command per line on stdin, one JSON answer per line on stdout.
//
// The only setting that is not a default is allowInsecureRequests, because the tests serve Chave
// over http:// on 127.0.0.1 (openid-client refuses plain HTTP otherwise); nothing about client
// assertion lifetimes, nonces or scopes is changed. A command that fails answers
// {"error": name, "message": text} and the portal keeps going.

import * as readline from 'node:readline'
import * as client from 'openid-client'
import { createRemoteJWKSet, jwtVerify } from 'jose'

let config
let dpop
let verifier
let tokens

async function configure(command) {
  const key = await crypto.subtle.importKey(
    'jwk', command.jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
  const found = await client.discovery(
    new URL(command.issuer), command.client_id, undefined,
    client.PrivateKeyJwt({ key, kid: command.jwk.kid }),
    { execute: [client.allowInsecureRequests] })
  return found
}

const commands = {
  async discover(command) {
    config = await configure(command)
    dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair())
    const metadata = config.serverMetadata()
    return { issuer: metadata.issuer, par: metadata.pushed_authorization_request_endpoint }
  },

  async authorize(command) {
    verifier = client.randomPKCECodeVerifier()
    const parameters = {
      redirect_uri: command.redirect_uri,
      scope: command.scope,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }
    const url = await client.buildAuthorizationUrlWithPAR(config, parameters, { DPoP: dpop })
    return { url: url.href }
  },

  async callback(command) {
    tokens = await client.authorizationCodeGrant(
      config, new URL(command.url), { pkceCodeVerifier: verifier, idTokenExpected: true }, undefined,
      { DPoP: dpop })
    return {
      token_type: tokens.token_type, scope: tokens.scope, refresh: Boolean(tokens.refresh_token),
      claims: tokens.claims(),
    }
  },

  async userinfo() {
    return await client.fetchUserInfo(config, tokens.access_token, tokens.claims().sub, { DPoP: dpop })
  },

  async refresh() {
    const before = tokens.claims()
    tokens = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop })
    return { token_type: tokens.token_type, claims: tokens.claims(), same_sub: tokens.claims().sub === before.sub }
  },

  async revoke(command) {
    await client.tokenRevocation(config, command.which === 'refresh' ? tokens.refresh_token : tokens.access_token)
    return { revoked: command.which }
  },

  async introspect(command) {
    // A resource server, registered as its own client, asks about the portal's access token.
    const resourceServer = await configure(command)
    return await client.tokenIntrospection(resourceServer, command.token ?? tokens.access_token)
  },

  async access_token() {
    return { access_token: tokens.access_token }
  },

  async logout_url(command) {
    const url = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token, post_logout_redirect_uri: command.post_logout_redirect_uri,
      state: command.state,
    })
    return { url: url.href }
  },

  async verify_logout_token(command) {
    // What a portal does with a back-channel logout token (Back-Channel Logout 1.0 §2.6).
    const metadata = config.serverMetadata()
    const { payload, protectedHeader } = await jwtVerify(
      command.logout_token, createRemoteJWKSet(new URL(metadata.jwks_uri)),
      { issuer: metadata.issuer, audience: config.clientMetadata().client_id, typ: 'logout+jwt' })
    const event = payload.events?.['http://schemas.openid.net/event/backchannel-logout']
    if (!event || payload.nonce !== undefined) throw new Error('not a logout token')
    return { sub: payload.sub, sid: payload.sid, alg: protectedHeader.alg }
  },
}

const lines = readline.createInterface({ input: process.stdin })
for await (const line of lines) {
  if (!line.trim()) continue
  const command = JSON.parse(line)
  let answer
  try {
    answer = await commands[command.command](command)
  } catch (error) {
    answer = { error: error.code || error.name, message: error.message, cause: error.cause?.error }
  }
  process.stdout.write(JSON.stringify(answer ?? {}) + '\n')
}
