"""Plausible wrong answers to exercises 00.7 (topological_order) and 00.8 (backward); each must
lose points in tests/graded/test_ch00_engine.py."""
MODULE = "ch00_tensor_core"

WRONG = {
    "topo_recursive_dfs": '''def topological_order(root):
    order, seen = [], set()

    def visit(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        for p in node.parents:
            visit(p)
        order.append(node)
    visit(root)
    return order
''',
    "topo_reversed_bfs": '''def topological_order(root):
    order, seen, queue = [], {id(root)}, [root]
    while queue:
        node = queue.pop(0)
        order.append(node)
        for p in node.parents:
            if id(p) not in seen:
                seen.add(id(p))
                queue.append(p)
    return order[::-1]
''',
    "backward_overwrites": '''def backward(root):
    root.grad = np.array(1.0)
    for node in reversed(topological_order(root)):
        if node.local_grads is None or node.grad is None:
            continue
        for parent, g in zip(node.parents, node.local_grads(node.grad)):
            parent.grad = g
''',
    "backward_in_place_add": '''def backward(root):
    root.grad = np.array(1.0)
    for node in reversed(topological_order(root)):
        if node.local_grads is None or node.grad is None:
            continue
        for parent, g in zip(node.parents, node.local_grads(node.grad)):
            if parent.grad is None:
                parent.grad = g
            else:
                parent.grad += g
''',
}
