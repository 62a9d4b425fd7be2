"""The model factory: plain dicts from a model's name to its function and its arg_scope.

Every net has the signature `net(images, num_classes, is_training, keep_prob, scope)
-> (logits, end_points)` and a `default_image_size` attribute.
"""
from cnn_tf.nets import four_conv, lenet, three_conv, vgg

nets_map = {
    "lenet": lenet.lenet,
    "three_conv": three_conv.three_conv,
    "four_conv": four_conv.four_conv,
    "vgg": vgg.vgg,
    "vgg16": vgg.vgg16,
}

arg_scopes_map = {
    "lenet": lenet.lenet_arg_scope,
    "three_conv": three_conv.three_conv_arg_scope,
    "four_conv": four_conv.four_conv_arg_scope,
    "vgg": vgg.vgg_arg_scope,
    "vgg16": vgg.vgg_arg_scope,
}
