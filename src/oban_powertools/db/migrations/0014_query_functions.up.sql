-- Pieces of SQL that several statements share, as database functions, so each is written
-- once (as migration 0013 did for the audit writer): the statements in db/queries call
-- them instead of repeating them.

-- A workflow and its sub-workflows (the tree below p_root, p_root included): what every
-- workflow action reads, locks and changes. STABLE and one SELECT, so the planner can
-- inline it into the calling statement.
CREATE FUNCTION powertools_workflow_tree(p_root uuid)
    RETURNS TABLE (id uuid)
    LANGUAGE sql STABLE
    AS $$
    WITH RECURSIVE tree(id) AS (
        SELECT w.id FROM powertools_workflows w WHERE w.id = p_root
        UNION ALL
        SELECT w.id FROM powertools_workflows w JOIN tree t ON w.parent_workflow_id = t.id
    )
    SELECT tree.id FROM tree
    $$;
