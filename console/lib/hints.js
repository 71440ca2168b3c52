// console/lib/hints.js: the optional arguments and policy keys Warren understands, offered
// as suggestions in the forms (broker/model/arguments.c and policy.c hold the real lists).

export const QUEUE_ARGUMENTS = [
  {key: 'x-message-ttl', type: 'number', help: 'how long a message may wait, ms'},
  {key: 'x-expires', type: 'number', help: 'delete the queue after this long unused, ms'},
  {key: 'x-max-length', type: 'number', help: 'at most this many ready messages'},
  {key: 'x-max-length-bytes', type: 'number', help: 'at most this many bytes of bodies'},
  {key: 'x-overflow', type: 'string', help: 'drop-head, reject-publish or reject-publish-dlx'},
  {key: 'x-dead-letter-exchange', type: 'string', help: 'where rejected and expired messages go'},
  {key: 'x-dead-letter-routing-key', type: 'string', help: 'their routing key there'},
  {key: 'x-max-priority', type: 'number', help: 'priorities 0 to this (at most 255)'},
  {key: 'x-single-active-consumer', type: 'boolean', help: 'one consumer at a time'},
  {key: 'x-queue-mode', type: 'string', help: 'default or lazy (accepted, no effect)'},
];

export const EXCHANGE_ARGUMENTS = [
  {key: 'alternate-exchange', type: 'string', help: 'where messages this exchange cannot route go'},
];

export const BINDING_ARGUMENTS = [
  {key: 'x-match', type: 'string', help: 'headers exchange: all, any, all-with-x or any-with-x'},
];

export const POLICY_KEYS = [
  {key: 'message-ttl', type: 'number', help: 'ms'},
  {key: 'expires', type: 'number', help: 'ms'},
  {key: 'max-length', type: 'number'},
  {key: 'max-length-bytes', type: 'number'},
  {key: 'overflow', type: 'string', help: 'drop-head, reject-publish or reject-publish-dlx'},
  {key: 'dead-letter-exchange', type: 'string'},
  {key: 'dead-letter-routing-key', type: 'string'},
  {key: 'alternate-exchange', type: 'string'},
  {key: 'queue-mode', type: 'string', help: 'default or lazy'},
  {key: 'delivery-limit', type: 'number'},
  {key: 'consumer-timeout', type: 'number', help: 'ms'},
];

export const OPERATOR_POLICY_KEYS = POLICY_KEYS.filter((k) =>
  ['message-ttl', 'expires', 'max-length', 'max-length-bytes', 'delivery-limit'].includes(k.key));

// Short marks for a queue's arguments in lists, as RabbitMQ's console shows them.
export const ARGUMENT_MARKS = {
  'x-message-ttl': 'TTL', 'x-expires': 'Exp', 'x-max-length': 'Lim', 'x-max-length-bytes': 'Lim B',
  'x-overflow': 'Ovfl', 'x-dead-letter-exchange': 'DLX', 'x-dead-letter-routing-key': 'DLK',
  'x-max-priority': 'Pri', 'x-single-active-consumer': 'SAC', 'x-queue-mode': 'Mode', 'alternate-exchange': 'AE',
};

// The message properties the publish forms offer (besides headers and delivery mode).
export const PROPERTIES = [
  ['content_type', 'string'], ['content_encoding', 'string'], ['priority', 'number'], ['correlation_id', 'string'],
  ['reply_to', 'string'], ['expiration', 'string'], ['message_id', 'string'], ['timestamp', 'number'],
  ['type', 'string'], ['user_id', 'string'], ['app_id', 'string'],
];
