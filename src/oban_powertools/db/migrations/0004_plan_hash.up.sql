-- The one definition of a preview's plan hash, used by every statement that stores a
-- preview: the SHA-256 (hex) of the plan (the action and its parameters, as canonical
-- JSON from Python) and the drift text of its targets ("target:key[:key...]" per target,
-- in target order, joined by ","), separated by "|". Two previews of the same plan over
-- targets in the same state have the same hash, whichever statement stored them.
CREATE FUNCTION powertools_plan_hash(plan text, drift text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT encode(sha256(convert_to(plan || '|' || drift, 'UTF8')), 'hex') $$;
