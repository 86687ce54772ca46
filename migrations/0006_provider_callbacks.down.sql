-- Reverts 0006_provider_callbacks: drops exactly what its up created.

drop table app.provider_callbacks;
drop function app.assert_callback();
drop function app.provider_secret(uuid, text);
drop table app.provider_secrets;
drop function app.current_provider();
revoke usage on schema app from frontdesk_callback;
