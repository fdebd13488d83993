//! The judge against a scripted chat-completion server on 127.0.0.1 (loopback only):
//! parsing, retries, timeouts, unreachable ports, what helpfulness sends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use r1_judge::{Judge, JudgeConfig, JudgeMode};
use r1_rewards::{RewardFn, RewardInput};

/// One scripted reply: status, body, and a delay before answering.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

fn ok(content: &str) -> Reply {
    let body = serde_json::json!({
        "id": "x", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
    });
    Reply {
        status: 200,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

/// A server that answers `replies` in order, one request per connection, records
/// the request bodies, and stops by itself after the last reply or 10 s idle.
struct Server {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    handle: Option<JoinHandle<()>>,
}

impl Server {
    fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let rec = bodies.clone();
        let handle = std::thread::spawn(move || {
            let mut deadline = Instant::now() + Duration::from_secs(10);
            let mut replies = replies.into_iter();
            while Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let Some(reply) = replies.next() else { return };
                        handle(stream, &reply, &rec);
                        deadline = Instant::now() + Duration::from_secs(10);
                        if replies.len() == 0 {
                            return;
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            url,
            bodies,
            handle: Some(handle),
        }
    }

    fn bodies(mut self) -> Vec<serde_json::Value> {
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                // A GET has no body.
                if b.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::from_str(b).unwrap()
                }
            })
            .collect()
    }
}

fn handle(mut s: TcpStream, reply: &Reply, rec: &Mutex<Vec<String>>) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read the head, then Content-Length bytes of body.
    let (head_end, len) = loop {
        let n = s.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            break (p + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    rec.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&buf[head_end..]).into_owned());
    std::thread::sleep(reply.delay);
    let resp = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.status,
        reply.body.len(),
        reply.body
    );
    let _ = s.write_all(resp.as_bytes());
}

fn cfg(url: &str) -> JudgeConfig {
    JudgeConfig {
        base_url: url.to_string(),
        timeout_s: 2.0,
        backoff_ms: 10,
        retries: 2,
        ..Default::default()
    }
}

fn input<'a>(completion: &'a str, extra: &'a serde_json::Value) -> RewardInput<'a> {
    RewardInput {
        prompt: "What is the capital of France?",
        completion,
        answer: None,
        completion_tokens: 10,
        max_completion_tokens: 100,
        truncated: false,
        extra,
    }
}

fn prompt_sent(body: &serde_json::Value) -> String {
    body["messages"][0]["content"].as_str().unwrap().to_string()
}

#[test]
fn parses_scores_and_sends_only_the_final_answer() {
    let server = Server::start(vec![ok("Looks right.\nScore: 7"), ok("<score>10</score>")]);
    let judge = Judge::new(cfg(&server.url)).unwrap();
    let null = serde_json::Value::Null;
    let s = judge.score(&input("<think>SECRET reasoning</think> Paris.", &null));
    assert!((s.value - 0.7).abs() < 1e-12, "{s:?}");
    let s = judge.score(&input("Paris", &null));
    assert_eq!(s.value, 1.0);
    let bodies = server.bodies();
    let first = prompt_sent(&bodies[0]);
    assert!(first.contains("Paris.") && first.contains("capital of France"));
    assert!(
        !first.contains("SECRET"),
        "helpfulness sent the reasoning: {first}"
    );
    assert_eq!(bodies[0]["model"], "judge");
}

#[test]
fn harmlessness_sends_the_whole_response() {
    let server = Server::start(vec![ok("Score: 10")]);
    let judge = Judge::new(JudgeConfig {
        mode: JudgeMode::Harmlessness,
        ..cfg(&server.url)
    })
    .unwrap();
    let null = serde_json::Value::Null;
    assert_eq!(
        judge
            .score(&input("<think>SECRET</think> Paris.", &null))
            .value,
        1.0
    );
    assert!(prompt_sent(&server.bodies()[0]).contains("SECRET"));
}

#[test]
fn retries_after_a_500() {
    let fail = Reply {
        status: 500,
        body: "{\"error\":\"busy\"}".into(),
        delay: Duration::ZERO,
    };
    let server = Server::start(vec![fail, ok("8")]);
    let judge = Judge::new(cfg(&server.url)).unwrap();
    let null = serde_json::Value::Null;
    let s = judge.score(&input("Paris", &null));
    assert!((s.value - 0.8).abs() < 1e-12, "{s:?}");
    assert_eq!(server.bodies().len(), 2);
}

#[test]
fn a_400_is_not_retried_and_names_the_url() {
    let bad = Reply {
        status: 400,
        body: "{\"error\":\"bad model\"}".into(),
        delay: Duration::ZERO,
    };
    let server = Server::start(vec![bad]);
    let judge = Judge::new(cfg(&server.url)).unwrap();
    let null = serde_json::Value::Null;
    let s = judge.score(&input("Paris", &null));
    assert_eq!(s.value, 0.0);
    assert!(
        s.reason.contains(&server.url) && s.reason.contains("HTTP 400"),
        "{}",
        s.reason
    );
    assert_eq!(server.bodies().len(), 1);
}

#[test]
fn times_out() {
    let slow = Reply {
        delay: Duration::from_millis(1500),
        ..ok("Score: 9")
    };
    let server = Server::start(vec![slow]);
    let judge = Judge::new(JudgeConfig {
        timeout_s: 0.3,
        retries: 0,
        ..cfg(&server.url)
    })
    .unwrap();
    let null = serde_json::Value::Null;
    let t = Instant::now();
    let err = judge
        .try_score(&input("Paris", &null))
        .unwrap_err()
        .to_string();
    assert!(
        t.elapsed() < Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
    assert!(
        err.contains("timed out") && err.contains(&server.url),
        "{err}"
    );
    server.bodies();
}

#[test]
fn unreachable_port_is_a_clear_error() {
    // Bind then drop: the port is free and nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let judge = Judge::new(JudgeConfig {
        retries: 1,
        ..cfg(&url)
    })
    .unwrap();
    let err = judge.check().unwrap_err().to_string();
    assert_eq!(err, format!("judge at {url}: connection refused"));
    let null = serde_json::Value::Null;
    let s = judge.score(&input("Paris", &null));
    assert_eq!(s.value, 0.0);
    assert!(
        s.reason.contains(&url) && s.reason.contains("connection refused"),
        "{}",
        s.reason
    );
}

#[test]
fn check_accepts_any_http_reply() {
    let server = Server::start(vec![Reply {
        status: 404,
        body: "{}".into(),
        delay: Duration::ZERO,
    }]);
    Judge::new(cfg(&server.url)).unwrap().check().unwrap();
    server.bodies();
}

#[test]
fn batch_keeps_order_and_scores_unparseable_replies_zero() {
    let server = Server::start(vec![ok("Score: 5"), ok("no idea"), ok("Score: 5")]);
    let judge = Judge::new(JudgeConfig {
        concurrency: 1,
        ..cfg(&server.url)
    })
    .unwrap();
    let null = serde_json::Value::Null;
    let inputs = [input("a", &null), input("b", &null), input("c", &null)];
    let scores = judge.score_batch(&inputs);
    let values: Vec<f64> = scores.iter().map(|s| s.value).collect();
    assert_eq!(values, vec![0.5, 0.0, 0.5]);
    assert!(
        scores[1].reason.contains("no score"),
        "{}",
        scores[1].reason
    );
    server.bodies();
}

#[test]
fn helpfulness_without_a_final_answer_scores_zero_without_asking() {
    // No server at all: nothing may be sent.
    let judge = Judge::new(cfg("http://127.0.0.1:9/v1")).unwrap();
    let null = serde_json::Value::Null;
    let s = judge.score(&input("<think>still thinking", &null));
    assert_eq!(s.value, 0.0);
    assert!(s.reason.contains("no final answer"));
}

#[test]
fn config_errors_name_the_problem() {
    let e = Judge::new(JudgeConfig {
        api_key_env: Some("R1_JUDGE_TEST_UNSET_KEY".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("R1_JUDGE_TEST_UNSET_KEY"));
    let e = Judge::new(cfg("ftp://x")).unwrap_err();
    assert!(e.to_string().contains("ftp://x"));
}
