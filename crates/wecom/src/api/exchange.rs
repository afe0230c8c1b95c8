//! Decoding the AuthCode exchange answer (`get_permanent_code`, v1 and v2) tolerantly.
//!
//! WeCom has already used the AuthCode up when this answer arrives: the permanent code in it is
//! never given again. A strict decode that fails on one optional field of an unexpected type
//! (`corp_user_max` as a string, an agent with a non-numeric id, …) would throw the only copy
//! away. So the answer is decoded strictly first and, if that fails, again from only what must be
//! kept — the permanent code, `auth_corp_info.corpid`, the corp name, the `state` and the agent
//! ids — with a warning that names the decoding problem (never a value of the permanent code).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::ApiError;

/// Decodes an exchange answer into `T` (`PermanentCodeV1` or `PermanentCodeV2`). Fails only
/// when the permanent code or the corp id itself is missing or not a string.
pub(crate) fn decode<T: DeserializeOwned>(path: &str, answer: &Value) -> Result<T, ApiError> {
    let strict_error = match T::deserialize(answer) {
        Ok(decoded) => return Ok(decoded),
        Err(error) => error,
    };
    let essentials = essentials(answer).ok_or_else(|| {
        ApiError::Decode(format!(
            "the exchange answer has no usable permanent_code and auth_corp_info.corpid \
             ({strict_error})"
        ))
    })?;
    tracing::warn!(
        path,
        error = %strict_error,
        "the exchange answer does not fit its type; keeping the permanent code, corp and agent \
         ids and dropping the other fields"
    );
    T::deserialize(&essentials).map_err(|error| ApiError::Decode(error.to_string()))
}

/// The fields that must survive any shape of the rest, as a minimal answer.
fn essentials(answer: &Value) -> Option<Value> {
    let permanent_code = answer.get("permanent_code")?.as_str()?;
    let corp = answer.get("auth_corp_info")?;
    let corp_id = corp.get("corpid")?.as_str()?;
    let mut corp_info = Map::new();
    corp_info.insert("corpid".to_owned(), json!(corp_id));
    if let Some(name) = corp.get("corp_name").and_then(Value::as_str) {
        corp_info.insert("corp_name".to_owned(), json!(name));
    }
    let agents: Vec<Value> = answer
        .pointer("/auth_info/agent")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|agent| integer(agent.get("agentid")?))
        .map(|agentid| json!({ "agentid": agentid }))
        .collect();
    let mut minimal = Map::new();
    minimal.insert("permanent_code".to_owned(), json!(permanent_code));
    minimal.insert("auth_corp_info".to_owned(), Value::Object(corp_info));
    minimal.insert("auth_info".to_owned(), json!({ "agent": agents }));
    if let Some(state) = answer.get("state").and_then(Value::as_str) {
        minimal.insert("state".to_owned(), json!(state));
    }
    Some(Value::Object(minimal))
}

/// A number, or a string holding one (WeCom has sent both for ids).
fn integer(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PermanentCodeV1, PermanentCodeV2};

    #[test]
    fn odd_optional_fields_do_not_lose_the_permanent_code() {
        let answer = json!({
            "errcode": 0, "errmsg": "ok",
            "permanent_code": "PERM",
            "auth_corp_info": {"corpid": "wwx", "corp_name": "X", "corp_user_max": "200",
                               "subject_type": "one"},
            "auth_info": {"agent": [{"agentid": "1000002", "privilege": "all"}]},
            "auth_user_info": [],
            "state": "s"
        });
        let v1: PermanentCodeV1 = decode("p", &answer).unwrap();
        assert_eq!(v1.permanent_code, "PERM");
        assert_eq!(v1.auth_corp_info.corpid, "wwx");
        assert_eq!(v1.auth_corp_info.corp_name.as_deref(), Some("X"));
        assert_eq!(v1.auth_info.agent[0].agentid, 1_000_002);
        assert_eq!(v1.state.as_deref(), Some("s"));
        let v2: PermanentCodeV2 = decode("p", &answer).unwrap();
        assert_eq!(v2.permanent_code, "PERM");
    }

    #[test]
    fn a_well_formed_answer_is_decoded_strictly() {
        let answer = json!({
            "permanent_code": "PERM",
            "auth_corp_info": {"corpid": "wwx", "corp_user_max": 200}
        });
        let v2: PermanentCodeV2 = decode("p", &answer).unwrap();
        assert_eq!(v2.auth_corp_info.corp_user_max, Some(200));
    }

    #[test]
    fn without_the_permanent_code_or_corp_it_is_a_decode_error() {
        for answer in [
            json!({"auth_corp_info": {"corpid": "wwx"}}),
            json!({"permanent_code": "P", "auth_corp_info": {"corpid": 7}}),
            json!({"permanent_code": 5, "auth_corp_info": {"corpid": "wwx"}}),
        ] {
            let error = decode::<PermanentCodeV2>("p", &answer).unwrap_err();
            assert!(matches!(error, ApiError::Decode(_)), "{error:?}");
        }
    }
}
