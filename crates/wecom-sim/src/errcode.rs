//! The errcodes the simulator answers, with WeCom's wording, in one table.
//!
//! WeCom answers errors as HTTP 200 with `{"errcode", "errmsg"}`; clients must judge by the code
//! alone (docs/wecom.md §5). Keeping the codes here makes the simulator's choices reviewable in
//! one place and documented next to docs/wecom-sim.md's table.

use wecom::api::Status;

/// A WeCom API failure: the `errcode` and a WeCom-style `errmsg`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("errcode {code}: {message}")]
pub struct ApiFailure {
    /// The `errcode`.
    pub code: i64,
    /// The human text (WeCom's English wording where known).
    pub message: &'static str,
}

impl ApiFailure {
    const fn new(code: i64, message: &'static str) -> Self {
        Self { code, message }
    }

    /// The JSON status WeCom sends, with its usual "more info" hint.
    pub fn status(&self, now_secs: i64) -> Status {
        Status::error(
            self.code,
            format!(
                "{}, hint: [{now_secs}-wecom-sim], more info at \
                 https://open.work.weixin.qq.com/devtool/query?e={}",
                self.message, self.code
            ),
        )
    }
}

/// An injected refusal (`[faults] refuse`): WeCom's text for the codes it is meant for.
pub fn refusal(code: i64) -> ApiFailure {
    let message = match code {
        -1 => SYSTEM_BUSY.message,
        45009 => FREQUENCY_LIMIT.message,
        45029 => "response size too large",
        48002 => "api forbidden",
        60011 => NO_PRIVILEGE.message,
        _ => "refused by wecom-sim (fault injection)",
    };
    ApiFailure::new(code, message)
}

/// -1: system busy (injected by the fault rate).
pub const SYSTEM_BUSY: ApiFailure = ApiFailure::new(-1, "system busy");
/// 40001: invalid secret (gettoken corpsecret, get_suite_token suite_secret, provider_secret).
pub const INVALID_CREDENTIAL: ApiFailure = ApiFailure::new(40001, "invalid credential");
/// 40013: unknown corpid.
pub const INVALID_CORPID: ApiFailure = ApiFailure::new(40013, "invalid corpid");
/// 40014: unknown (or revoked) access_token.
pub const INVALID_ACCESS_TOKEN: ApiFailure = ApiFailure::new(40014, "invalid access_token");
/// 40029: OAuth2 login code unknown, already used, expired, or another app's.
pub const INVALID_CODE: ApiFailure = ApiFailure::new(40029, "invalid code");
/// 40056: agentid is not the token's app.
pub const INVALID_AGENTID: ApiFailure = ApiFailure::new(40056, "invalid agentid");
/// 40058: a parameter is out of range (e.g. list_id limit).
pub const INVALID_PARAMETER: ApiFailure = ApiFailure::new(40058, "invalid Request Parameter");
/// 40068: unknown tag id.
pub const INVALID_TAGID: ApiFailure = ApiFailure::new(40068, "invalid tagid");
/// 40078: AuthCode unknown, already used, expired, or from another suite.
pub const INVALID_AUTH_CODE: ApiFailure = ApiFailure::new(40078, "invalid auth_code");
/// 40082: unknown suite_access_token.
pub const INVALID_SUITE_TOKEN: ApiFailure = ApiFailure::new(40082, "invalid suite_token");
/// 40083: unknown suite_id.
pub const INVALID_SUITE_ID: ApiFailure = ApiFailure::new(40083, "invalid suite_id");
/// 40084: permanent_code does not match an active authorization.
pub const INVALID_PERMANENT_CODE: ApiFailure = ApiFailure::new(40084, "invalid permanent_code");
/// 40085: suite_ticket unknown, expired, or from another suite.
pub const INVALID_SUITE_TICKET: ApiFailure = ApiFailure::new(40085, "invalid suite_ticket");
/// 41001: access_token missing.
pub const MISSING_ACCESS_TOKEN: ApiFailure = ApiFailure::new(41001, "access_token missing");
/// 41002: corpid missing.
pub const MISSING_CORPID: ApiFailure = ApiFailure::new(41002, "corpid missing");
/// 41004: corpsecret missing.
pub const MISSING_SECRET: ApiFailure = ApiFailure::new(41004, "corpsecret missing");
/// 41008: OAuth2 login code missing.
pub const MISSING_CODE: ApiFailure = ApiFailure::new(41008, "missing code");
/// 41009: userid missing.
pub const MISSING_USERID: ApiFailure = ApiFailure::new(41009, "missing userid");
/// 41011: agentid missing.
pub const MISSING_AGENTID: ApiFailure = ApiFailure::new(41011, "missing agentid");
/// 41017: tagid missing.
pub const MISSING_TAGID: ApiFailure = ApiFailure::new(41017, "missing tagid");
/// 41022: suite_access_token missing.
pub const MISSING_SUITE_TOKEN: ApiFailure = ApiFailure::new(41022, "suite_access_token missing");
/// 41034: a required body field (suite_ticket, auth_code, …) is missing.
pub const MISSING_PARAMETER: ApiFailure = ApiFailure::new(41034, "missing parameter");
/// 42001: access_token expired.
pub const ACCESS_TOKEN_EXPIRED: ApiFailure = ApiFailure::new(42001, "access_token expired");
/// 42009: suite_access_token expired.
pub const SUITE_TOKEN_EXPIRED: ApiFailure = ApiFailure::new(42009, "suite_access_token expired");
/// 45009: per-corp per-API frequency limit; lasts for the rest of the window.
pub const FREQUENCY_LIMIT: ApiFailure = ApiFailure::new(45009, "api freq out of limit");
/// 47001: the body is not the JSON the endpoint expects.
pub const DATA_FORMAT_ERROR: ApiFailure = ApiFailure::new(47001, "data format error");
/// 48004: the authorization was cancelled (gettoken and every call with one of its tokens).
pub const AUTHORIZATION_CANCELLED: ApiFailure =
    ApiFailure::new(48004, "api forbidden for auth relation invalid");
/// 50003: the app is disabled (every app API but `agent/get` while the corp has it disabled).
pub const APP_DISABLED: ApiFailure = ApiFailure::new(50003, "application is disabled");
/// 50100: the list_id cursor is not one this simulator issued for this corp.
pub const INVALID_CURSOR: ApiFailure = ApiFailure::new(50100, "invalid cursor");
/// 60003: department not found.
pub const DEPARTMENT_NOT_FOUND: ApiFailure = ApiFailure::new(60003, "department not found");
/// 60011: the user/department is outside the app's visibility scope.
pub const NO_PRIVILEGE: ApiFailure =
    ApiFailure::new(60011, "no privilege to access/modify contact/party/agent");
/// 60111: userid not found.
pub const USERID_NOT_FOUND: ApiFailure = ApiFailure::new(60111, "userid not found");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_code_and_names_it_in_the_hint() {
        let status = INVALID_AUTH_CODE.status(1_700_000_000);
        assert_eq!(status.errcode, 40078);
        assert!(
            status
                .errmsg
                .starts_with("invalid auth_code, hint: [1700000000-wecom-sim]")
        );
        assert!(status.errmsg.ends_with("?e=40078"));
    }
}
