//! The Kafka transport: an embedded broker when none is configured, topic provisioning,
//! and the producer and consumer settings every part of dijkwacht shares.

use crate::telemetry::trace::{self, TraceParent};
use crate::topics::TopicNames;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::FutureProducer;
use rdkafka::types::{RDKafkaApiKey, RDKafkaErrorCode, RDKafkaRespErr};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Partitions per topic; case ids spread over them, each case stays on one.
pub const DEFAULT_PARTITIONS: i32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the embedded Kafka broker could not start: {0}")]
    Embedded(String),
    #[error("creating topic {topic}: {source}")]
    CreateTopic { topic: String, source: KafkaError },
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

/// librdkafka's in-process mock cluster, listening on real loopback sockets so any client
/// (or another process) can use it. It lives on its own thread because the handle is not
/// `Send`; dropping this value shuts it down.
pub struct EmbeddedBroker {
    bootstrap_servers: String,
    requests: Option<mpsc::Sender<BrokerRequest>>,
    thread: Option<JoinHandle<()>>,
}

enum BrokerRequest {
    CreateTopic {
        name: String,
        partitions: i32,
        done: mpsc::Sender<Result<(), KafkaError>>,
    },
    /// The next requests of this kind fail with these errors, one each (for fault tests).
    FailRequests {
        api: RDKafkaApiKey,
        errors: Vec<RDKafkaRespErr>,
        done: mpsc::Sender<Result<(), KafkaError>>,
    },
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .finish()
    }
}

impl EmbeddedBroker {
    pub fn start(brokers: i32) -> Result<Self, BrokerError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (requests_tx, requests_rx) = mpsc::channel::<BrokerRequest>();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(cluster) => cluster,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Serves requests until every sender is gone, then drops the cluster.
                for request in requests_rx {
                    let _ = match request {
                        BrokerRequest::CreateTopic { name, partitions, done } => {
                            done.send(cluster.create_topic(&name, partitions, 1))
                        }
                        BrokerRequest::FailRequests { api, errors, done } => {
                            cluster.request_errors(api, &errors);
                            done.send(Ok(()))
                        }
                    };
                }
            })
            .map_err(|e| BrokerError::Embedded(e.to_string()))?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|e| BrokerError::Embedded(e.to_string()))?
            .map_err(BrokerError::Embedded)?;
        Ok(Self {
            bootstrap_servers,
            requests: Some(requests_tx),
            thread: Some(thread),
        })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BrokerError> {
        let (done, result) = mpsc::channel();
        self.ask(BrokerRequest::CreateTopic {
            name: name.to_owned(),
            partitions,
            done,
        })?;
        Self::answer(result)?.map_err(|source| BrokerError::CreateTopic {
            topic: name.to_owned(),
            source,
        })
    }

    /// Makes the next requests of kind `api` fail with `errors`, one per request.
    pub fn fail_requests(&self, api: RDKafkaApiKey, errors: &[RDKafkaRespErr]) -> Result<(), BrokerError> {
        let (done, result) = mpsc::channel();
        self.ask(BrokerRequest::FailRequests {
            api,
            errors: errors.to_vec(),
            done,
        })?;
        Ok(Self::answer(result)??)
    }

    fn ask(&self, request: BrokerRequest) -> Result<(), BrokerError> {
        self.requests
            .as_ref()
            .ok_or_else(broker_gone)?
            .send(request)
            .map_err(|_| broker_gone())
    }

    fn answer<T>(result: mpsc::Receiver<T>) -> Result<T, BrokerError> {
        result.recv().map_err(|_| broker_gone())
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Which of `names` the cluster does not have yet (a cluster without the admin API, such as
/// another process's embedded broker, has its topics made for it beforehand).
fn existing_topics_missing(
    admin: &AdminClient<DefaultClientContext>,
    names: Vec<String>,
) -> Result<Vec<String>, BrokerError> {
    let metadata = admin.inner().fetch_metadata(None, std::time::Duration::from_secs(10))?;
    let existing: std::collections::HashSet<&str> = metadata
        .topics()
        .iter()
        .filter(|topic| topic.error().is_none() && !topic.partitions().is_empty())
        .map(|topic| topic.name())
        .collect();
    Ok(names
        .into_iter()
        .filter(|name| !existing.contains(name.as_str()))
        .collect())
}

fn broker_gone() -> BrokerError {
    BrokerError::Embedded("the broker thread has stopped".into())
}

/// Creates every dijkwacht topic on an external cluster; topics that exist are left alone.
pub async fn ensure_topics(bootstrap_servers: &str, topics: &TopicNames, partitions: i32) -> Result<(), BrokerError> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap_servers).create()?;
    let names = existing_topics_missing(&admin, topics.all())?;
    if names.is_empty() {
        return Ok(());
    }
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
        .collect();
    for result in admin.create_topics(&new_topics, &AdminOptions::new()).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(BrokerError::CreateTopic {
                    topic,
                    source: KafkaError::AdminOp(code),
                })
            }
        }
    }
    Ok(())
}

fn base_config(bootstrap_servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap_servers).set("log_level", "4");
    config
}

/// How a process produces.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    pub bootstrap_servers: String,
    /// How long librdkafka may try to deliver one message.
    pub message_timeout: Duration,
    /// Off only for brokers that cannot take a producer's epoch bump after a message
    /// timeout (Tansu 0.6.0 fails on it).
    pub idempotence: bool,
}

/// A producer waiting for all in-sync replicas: a publish that succeeded is durable. Normally
/// idempotent, so librdkafka's own retries never duplicate and per-partition order holds;
/// without idempotence one request in flight keeps the order, and a duplicate is harmless
/// because every stage decides on the case's state.
pub fn producer(settings: &ProducerSettings) -> Result<FutureProducer, KafkaError> {
    let mut config = base_config(&settings.bootstrap_servers);
    config
        .set("acks", "all")
        // The relay hands over a whole batch at once, so there is little to gain by waiting
        // for more; every hop between stages would pay the wait.
        .set("linger.ms", "1")
        .set("message.timeout.ms", settings.message_timeout.as_millis().to_string());
    if settings.idempotence {
        config.set("enable.idempotence", "true");
    } else {
        config
            .set("enable.idempotence", "false")
            .set("max.in.flight.requests.per.connection", "1");
    }
    config.create()
}

/// A consumer that stores offsets only when told to: a stage stores them after its append
/// transaction committed, never before.
pub fn consumer<C: ConsumerContext + 'static>(
    bootstrap_servers: &str,
    group_id: &str,
    context: C,
) -> Result<StreamConsumer<C>, KafkaError> {
    base_config(bootstrap_servers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        // Latency between stages matters more than fetch efficiency at our message sizes; and
        // librdkafka's mock cluster answers an empty fetch only when this has passed, even
        // if messages arrive meanwhile (a Kafka broker answers as soon as they do).
        .set("fetch.wait.max.ms", "10")
        .set("partition.assignment.strategy", "cooperative-sticky")
        // A stage takes at most a batch (500 messages of a few KB) at a time: fetching 64 MiB
        // ahead, librdkafka's default, held that much per consumer in memory for nothing
        // when a burst arrived. One fetch may overshoot it.
        .set("queued.max.messages.kbytes", "8192")
        .set("fetch.max.bytes", "4194304")
        // How often the consumer reports its lag per partition (ConsumerContext::stats).
        .set("statistics.interval.ms", "5000")
        .create_with_context(context)
}

/// The header naming a message's event type.
pub const EVENT_TYPE_HEADER: &str = "dijkwacht-event-type";

/// The headers of an event's message: its type, and the trace it continues.
pub fn event_headers(event_type: &str, traceparent: Option<&TraceParent>) -> OwnedHeaders {
    let headers = OwnedHeaders::new().insert(Header {
        key: EVENT_TYPE_HEADER,
        value: Some(event_type),
    });
    match traceparent {
        Some(traceparent) => headers.insert(Header {
            key: trace::HEADER,
            value: Some(traceparent.as_str()),
        }),
        None => headers,
    }
}

/// The event type a message carries by its header, if it has one.
pub fn event_type_of<M: Message>(message: &M) -> Option<&str> {
    header(message, EVENT_TYPE_HEADER)
}

/// The trace a consumed message continues, from its headers.
pub fn traceparent_of<M: Message>(message: &M) -> Option<TraceParent> {
    header(message, trace::HEADER).and_then(TraceParent::parse)
}

fn header<'m, M: Message>(message: &'m M, key: &str) -> Option<&'m str> {
    message
        .headers()?
        .iter()
        .find(|header| header.key == key)
        .and_then(|header| std::str::from_utf8(header.value?).ok())
}
