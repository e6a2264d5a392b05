//! DescribeConfigs for topics and this broker, with Kafka's names, sources and synonyms.

use super::topic_configs::{
    broker_entries, is_this_broker, topic_entries, RESOURCE_BROKER, RESOURCE_TOPIC,
};
use super::{sb, RequestContext};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = ctx.broker;
    let mut results = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let mut r = DescribeConfigsResult::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let name = res.resource_name.to_string();
        let access = super::topic_configs::config_access(
            ctx,
            res.resource_type,
            &name,
            crate::auth::acl::Operation::DescribeConfigs,
        );
        let entries = match res.resource_type {
            _ if access.is_err() => access.map(|_| Vec::new()),
            RESOURCE_TOPIC => match broker.store.topic(&name) {
                Some(t) => Ok(topic_entries(broker, &t.meta.configs)),
                None => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {name} does not exist"),
                )),
            },
            RESOURCE_BROKER if is_this_broker(broker, &name) => Ok(broker_entries(broker)),
            RESOURCE_BROKER => Err((
                ResponseError::InvalidRequest,
                format!("unknown broker {name}"),
            )),
            other => Err((
                ResponseError::InvalidRequest,
                format!("unsupported resource type {other}"),
            )),
        };
        match entries {
            Ok(entries) => {
                let keys: Option<Vec<String>> = res
                    .configuration_keys
                    .map(|k| k.iter().map(|s| s.to_string()).collect());
                r.configs = entries
                    .into_iter()
                    .filter(|e| keys.as_ref().is_none_or(|k| k.contains(&e.name)))
                    .map(|e| {
                        let mut c = DescribeConfigsResourceResult::default();
                        c.name = sb(&e.name);
                        c.value = Some(sb(&e.value));
                        c.read_only = e.read_only;
                        c.config_source = e.source as i8;
                        if ctx.version >= 3 {
                            c.config_type = e.kind;
                        }
                        if req.include_synonyms && ctx.version >= 1 {
                            c.synonyms = e
                                .synonyms
                                .iter()
                                .map(|(n, v, s)| {
                                    let mut y = DescribeConfigsSynonym::default();
                                    y.name = sb(n);
                                    y.value = Some(sb(v));
                                    y.source = *s as i8;
                                    y
                                })
                                .collect();
                        }
                        c
                    })
                    .collect();
            }
            Err((e, msg)) => {
                r.error_code = e.code();
                r.error_message = Some(sb(&msg));
            }
        }
        results.push(r);
    }
    let mut resp = DescribeConfigsResponse::default();
    resp.results = results;
    resp
}
