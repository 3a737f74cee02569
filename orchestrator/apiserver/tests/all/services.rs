//! Service address allocation: cluster IPs and node ports.

use http::StatusCode;
use serde_json::json;

use crate::harness::TestServer;

crate::on_both_stores!(services_get_addresses);

async fn services_get_addresses(s: TestServer) {
    let svc = |name: &str, spec: serde_json::Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec});
    let base = "/api/v1/namespaces/default/services";
    let (code, web) = s
        .post(
            base,
            svc(
                "web",
                json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{web}");
    let ip = web["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.43."), "{ip}");
    assert_eq!(web["spec"]["clusterIPs"], json!([ip]));
    assert!(web["spec"]["ports"][0].get("nodePort").is_none());

    let (code, np) = s
        .post(base, svc("np", json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]})))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{np}");
    let p0 = np["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    let p1 = np["spec"]["ports"][1]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&p0) && p0 != p1);
    assert_ne!(np["spec"]["clusterIP"], web["spec"]["clusterIP"]);

    // A node port in use is refused, naming the field.
    let (code, err) = s
        .post(
            base,
            svc(
                "dup",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": p0}]}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("spec.ports[0].nodePort"),
        "{err}"
    );

    // Headless and ExternalName get no address.
    let (_, headless) = s
        .post(
            base,
            svc(
                "headless",
                json!({"clusterIP": "None", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(headless["spec"]["clusterIP"], "None");

    // A replace without the addresses keeps them (Kubernetes ≥ 1.20).
    let mut again = svc(
        "np",
        json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}),
    );
    again["metadata"]["resourceVersion"] = np["metadata"]["resourceVersion"].clone();
    let (code, replaced) = s.put(&format!("{base}/np"), again).await;
    assert_eq!(code, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["spec"]["clusterIP"], np["spec"]["clusterIP"]);
    assert_eq!(replaced["spec"]["ports"][0]["nodePort"], p0);
    assert_eq!(replaced["spec"]["ports"][1]["nodePort"], p1);

    // ClusterIP → NodePort allocates the port on update.
    let (code, changed) = s
        .patch(
            &format!("{base}/web"),
            "application/merge-patch+json",
            json!({"spec": {"type": "NodePort"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{changed}");
    assert!(changed["spec"]["ports"][0]["nodePort"].as_u64().is_some());
    assert_eq!(changed["spec"]["clusterIP"], ip.as_str());
}
