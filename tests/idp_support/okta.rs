//! The fake Okta org's Factors API routes (see the parent module).

use super::*;

fn check_okta_headers(s: &Shared, h: &HeaderMap, body: bool) -> Result<(), Response> {
    if header(h, "authorization") != Some(&format!("SSWS {OKTA_TOKEN}")) {
        s.lock()
            .unwrap()
            .seen
            .rejected
            .push("no valid SSWS token".into());
        return Err(json_answer(
            StatusCode::UNAUTHORIZED,
            &fixture("okta/error-invalid-token.json"),
        ));
    }
    if header(h, "accept") != Some("application/json") {
        return Err(reject(s, "Accept must be application/json"));
    }
    if body && header(h, "content-type") != Some("application/json") {
        return Err(reject(s, "Content-Type must be application/json"));
    }
    Ok(())
}

fn okta_links(v: &mut Value, base: &str) {
    *v = serde_json::from_str(&v.to_string().replace("https://${yourOktaDomain}", base)).unwrap();
}

pub(super) async fn okta_enroll(
    State(s): State<Shared>,
    Path(user): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = enter(
        &s,
        &Method::POST,
        &format!("/api/v1/users/{user}/factors"),
        true,
    ) {
        return r;
    }
    if let Err(r) = check_okta_headers(&s, &h, true) {
        return r;
    }
    if serde_json::from_slice::<Value>(&body).ok()
        != Some(json!({"factorType": "webauthn", "provider": "FIDO"}))
    {
        return reject(
            &s,
            "enroll body must be exactly factorType webauthn, provider FIDO",
        );
    }
    let factor = format!("fwf{}", &random_b64(15)[..17]);
    let (c, _) = issue_challenge(&s, &user, Some(factor.clone()), 15);
    let mut f = fixture("okta/enroll-webauthn.json");
    f = serde_json::from_str(
        &f.to_string()
            .replace("fwf2rovRxogXJ0nDy0g4", &factor)
            .replace("00u15s1KDETTQMQYABRL", &user),
    )
    .unwrap();
    okta_links(&mut f, &s.lock().unwrap().base.clone());
    f["_embedded"]["activation"]["challenge"] = c.into();
    f["_embedded"]["activation"]["user"]["id"] = URL_SAFE_NO_PAD.encode(user.as_bytes()).into();
    json_answer(StatusCode::OK, &f)
}

pub(super) async fn okta_activate(
    State(s): State<Shared>,
    Path((user, factor)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = enter(
        &s,
        &Method::POST,
        &format!("/api/v1/users/{user}/factors/{factor}/lifecycle/activate"),
        true,
    ) {
        return r;
    }
    if let Err(r) = check_okta_headers(&s, &h, true) {
        return r;
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return reject(&s, "body is not JSON");
    };
    if b.as_object().map(|o| o.len()) != Some(2) {
        return reject(
            &s,
            "activate body must hold attestation and clientData only",
        );
    }
    let dec = |v: &Value| v.as_str().and_then(|t| STANDARD.decode(t).ok());
    let (Some(ao), Some(cd)) = (dec(&b["attestation"]), dec(&b["clientData"])) else {
        return reject(&s, "attestation and clientData must be base64");
    };
    let base = s.lock().unwrap().base.clone();
    let host = base
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    let cred = match check_ceremony(&s, &user, &cd, &ao, &base, &host, Some(&factor)) {
        Ok(c) => c,
        Err((why, true)) => {
            s.lock().unwrap().seen.rejected.push(why.into());
            let e = json!({"errorCode": "E0000001", "errorSummary": "Api validation failed: factor",
                           "errorLink": "E0000001", "errorId": "oaeFakeExpired", "errorCauses": [{"errorSummary": "The factor activation has expired."}]});
            return json_answer(StatusCode::BAD_REQUEST, &e);
        }
        Err((why, false)) => return reject(&s, why),
    };
    let mut f = fixture("okta/activate-webauthn.json");
    f = serde_json::from_str(
        &f.to_string()
            .replace("fwf2rovRxogXJ0nDy0g4", &factor)
            .replace("00u15s1KDETTQMQYABRL", &user),
    )
    .unwrap();
    okta_links(&mut f, &base);
    f["profile"]["credentialId"] = URL_SAFE_NO_PAD.encode(&cred).into();
    let mut g = s.lock().unwrap();
    g.seen.registered += 1;
    g.methods.entry(user).or_default().push(Method_ {
        id: factor,
        credential_id: cred,
        display_name: String::new(),
    });
    json_answer(StatusCode::OK, &f)
}

pub(super) async fn okta_list(
    State(s): State<Shared>,
    Path(user): Path<String>,
    h: HeaderMap,
) -> Response {
    if let Some(r) = enter(
        &s,
        &Method::GET,
        &format!("/api/v1/users/{user}/factors"),
        true,
    ) {
        return r;
    }
    if let Err(r) = check_okta_headers(&s, &h, false) {
        return r;
    }
    let base = s.lock().unwrap().base.clone();
    let list: Vec<Value> = s
        .lock()
        .unwrap()
        .methods
        .get(&user)
        .into_iter()
        .flatten()
        .map(|m| {
            let mut f = fixture("okta/factors.json")[0].clone();
            f = serde_json::from_str(
                &f.to_string()
                    .replace("fwf2rovRxogXJ0nDy0g4", &m.id)
                    .replace("00u15s1KDETTQMQYABRL", &user),
            )
            .unwrap();
            okta_links(&mut f, &base);
            f["profile"]["credentialId"] = URL_SAFE_NO_PAD.encode(&m.credential_id).into();
            f
        })
        .collect();
    json_answer(StatusCode::OK, &Value::Array(list))
}

pub(super) async fn okta_delete(
    State(s): State<Shared>,
    Path((user, factor)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    if let Some(r) = enter(
        &s,
        &Method::DELETE,
        &format!("/api/v1/users/{user}/factors/{factor}"),
        true,
    ) {
        return r;
    }
    if let Err(r) = check_okta_headers(&s, &h, false) {
        return r;
    }
    if !remove_method(&s, user, &factor) {
        let e = json!({"errorCode": "E0000007", "errorSummary": format!("Not found: Resource not found: {factor} (UserFactor)"),
                       "errorLink": "E0000007", "errorId": "oaeFakeNotFound", "errorCauses": []});
        return json_answer(StatusCode::NOT_FOUND, &e);
    }
    StatusCode::NO_CONTENT.into_response()
}
