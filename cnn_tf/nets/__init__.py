"""The model factory: plain dicts from a model's name to its function and its arg_scope.

Every net has the signature `net(images, num_classes, is_training, keep_prob, scope)
-> (logits, end_points)` and a `default_image_size` attribute.
"""
from cnn_tf.nets import lenet

nets_map = {
    "lenet": lenet.lenet,
}

arg_scopes_map = {
    "lenet": lenet.lenet_arg_scope,
}
