//! The WeCom (企业微信) protocol as a library, for 自建应用代开发 service providers.
//!
//! - [`ids`]: the ids and credentials of the protocol, each its own type, parsed at the boundary.
//! - [`crypto`]: the callback crypto (WXBizMsgCrypt): signatures, AES-256-CBC with 32-byte PKCS#7.
//! - [`callback`]: the encrypted POST envelope and the callback query string.
//! - [`event`]: one typed enum for everything WeCom pushes, parsed from the decrypted XML.
//! - [`api`]: the server API client with every errcode classified.
//! - [`jssdk`]: the JS-SDK permission signature of `wx.config` and `wx.agentConfig`.
//! - [`suite`]: the suites (templates) a deployment serves, from TOML or the environment form.
//!
//! Nothing here reads the environment or holds global state; only [`api`] does I/O.

pub mod api;
pub mod callback;
pub mod crypto;
pub mod event;
pub mod ids;
pub mod jssdk;
pub mod suite;
