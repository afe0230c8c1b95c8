//! The ingress hot path for one 1 KB callback: signature check, base64, AES-256-CBC, unpadding,
//! unframing and XML parsing into a typed event. Budget: ≤ 10 µs on one core
//! (docs/architecture.md §5).
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wecom::callback::EncryptedEnvelope;
use wecom::crypto::CallbackCrypto;
use wecom::event::Event;

const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP_ID: &str = "wwcorp0123456789";

/// An update_user push of about 1 KB of plaintext, as an app data callback carries it.
fn update_user_xml() -> String {
    let mut xml = String::from(
        "<xml><ToUserName><![CDATA[wwcorp0123456789]]></ToUserName>\
         <FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime>\
         <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>\
         <ChangeType>update_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID>\
         <NewUserID><![CDATA[zhangsan2]]></NewUserID><Name><![CDATA[张三]]></Name>\
         <Department><![CDATA[1,2,3,4,5]]></Department><MainDepartment>1</MainDepartment>\
         <IsLeaderInDept><![CDATA[1,0,0,1,0]]></IsLeaderInDept>\
         <DirectLeader><![CDATA[lisi,wangwu]]></DirectLeader>\
         <Position><![CDATA[产品经理]]></Position><Mobile>13800000000</Mobile><Gender>1</Gender>\
         <Email><![CDATA[zhangsan@gzdev.com]]></Email><Status>1</Status>\
         <Avatar><![CDATA[http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0]]></Avatar>\
         <Alias><![CDATA[zhangsan]]></Alias><Telephone><![CDATA[020-123456]]></Telephone>\
         <Address><![CDATA[广州市海珠区新港中路]]></Address><ExtAttr>",
    );
    let mut n = 0;
    while xml.len() < 980 {
        write!(
            xml,
            "<Item><Name><![CDATA[爱好{n}]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item>"
        )
        .unwrap();
        n += 1;
    }
    xml.push_str("</ExtAttr></xml>");
    xml
}

fn bench_callback(c: &mut Criterion) {
    let crypto = CallbackCrypto::new("QDG6eK", KEY).unwrap();
    let plaintext = update_user_xml();
    let encrypt = crypto.encrypt(&plaintext, CORP_ID).unwrap();
    let body = format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
    );
    let signature = crypto.signature("1700000000", "1372623149", &encrypt);
    // Sanity: the benchmarked path succeeds.
    let opened = crypto
        .open(&signature, "1700000000", "1372623149", &encrypt)
        .unwrap();
    assert!(matches!(
        Event::parse(&opened.message),
        Ok(Event::ChangeContact(_))
    ));

    let mut group = c.benchmark_group("callback");
    group.throughput(Throughput::Bytes(plaintext.len() as u64));
    group.bench_function("verify_decrypt_parse_1kb", |b| {
        b.iter(|| {
            let envelope = EncryptedEnvelope::parse(black_box(body.as_bytes())).unwrap();
            let opened = crypto
                .open(&signature, "1700000000", "1372623149", &envelope.encrypt)
                .unwrap();
            opened.check_receive_id(&[CORP_ID]).unwrap();
            black_box(Event::parse(&opened.message).unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, bench_callback);
criterion_main!(benches);
