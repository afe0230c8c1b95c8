//! The JS-SDK permission signature (docs/wecom.md §4.6): what `wx.config` and `wx.agentConfig`
//! carry so that WeCom's client lets a page call its JS APIs.
//!
//! `signature = hex(sha1("jsapi_ticket=T&noncestr=N&timestamp=S&url=U"))`: the four fields in
//! that (alphabetical) order, their values raw (no URL escaping), and the page URL without its
//! `#` fragment. `wx.config` signs with the corp's jsapi_ticket, `wx.agentConfig` with the app's
//! ticket; the algorithm is the same.

use sha1::{Digest, Sha1};

/// The page URL as it is signed: everything before the first `#`.
pub fn signed_url(url: &str) -> &str {
    url.split_once('#').map_or(url, |(before, _)| before)
}

/// The lowercase hex SHA-1 signature of a page `url` (its fragment is dropped).
pub fn signature(ticket: &str, nonce: &str, timestamp: i64, url: &str) -> String {
    let text = format!(
        "jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={}",
        signed_url(url)
    );
    hex::encode(Sha1::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of WeCom's (and WeChat's) JS-SDK signature page.
    const TICKET: &str =
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";

    #[test]
    fn the_documented_example_signs_as_documented() {
        assert_eq!(
            signature(
                TICKET,
                "Wm3WZYTPz0wzccnW",
                1_414_587_457,
                "http://mp.weixin.qq.com?params=value"
            ),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
        );
    }

    #[test]
    fn the_fragment_is_not_signed() {
        let url = "http://mp.weixin.qq.com?params=value";
        assert_eq!(
            signature(TICKET, "n", 1, &format!("{url}#/page?x=1")),
            signature(TICKET, "n", 1, url)
        );
        assert_eq!(signed_url("https://a.example/x#"), "https://a.example/x");
    }
}
